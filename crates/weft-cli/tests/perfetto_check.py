"""Reads a Perfetto trace with Perfetto's own protobuf module (the `perfetto`
PyPI package) and prints what weft's test compares, as JSON."""
import collections
import json
import sys

from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

trace = pb.Trace()
with open(sys.argv[1], "rb") as f:
    trace.ParseFromString(f.read())
processes, threads, names = {}, {}, {}
slices, instants, open_slices = collections.Counter(), collections.Counter(), collections.Counter()
annotations = {}
samples, callstacks = 0, set()
stack = collections.defaultdict(list)
for p in trace.packet:
    if p.HasField("track_descriptor"):
        d = p.track_descriptor
        names[d.uuid] = d.name
        if d.HasField("process"):
            processes[d.process.pid] = d.process.process_name
        if d.HasField("thread"):
            threads[d.thread.tid] = d.thread.pid
    if p.HasField("interned_data"):
        callstacks.update(c.iid for c in p.interned_data.callstacks)
    if p.HasField("perf_sample"):
        samples += 1
        assert p.perf_sample.callstack_iid in callstacks, "a sample's callstack is not interned"
    if p.HasField("track_event"):
        e = p.track_event
        assert e.track_uuid in names, "an event on an undescribed track"
        if e.type == pb.TrackEvent.TYPE_SLICE_BEGIN:
            slices[e.name] += 1
            stack[e.track_uuid].append(e.name)
            annotations.setdefault(e.name, {a.name: a.string_value for a in e.debug_annotations})
        elif e.type == pb.TrackEvent.TYPE_SLICE_END:
            name = stack[e.track_uuid].pop()
            annotations.setdefault(name + " end", {a.name: a.string_value for a in e.debug_annotations})
        elif e.type == pb.TrackEvent.TYPE_INSTANT:
            instants[e.name] += 1
            annotations.setdefault(e.name, {a.name: (a.string_value or a.int_value or a.uint_value) for a in e.debug_annotations})
print(json.dumps({
    "processes": {str(k): v for k, v in processes.items()},
    "threads": {str(k): v for k, v in threads.items()},
    "slices": slices,
    "instants": instants,
    "unclosed": sum(len(v) for v in stack.values()),
    "annotations": annotations,
    "samples": samples,
}))
