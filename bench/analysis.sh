#!/usr/bin/env bash
# bench/analysis.sh - how fast weft reads, prints and exports a large trace,
# side by side with babeltrace2 on an lttng-ust CTF trace and perf script on
# a perf.data of the same event count, in the same run (docs/performance.md §8).
#
# Traces made here (N events each, default 10 000 000):
#   weft-sys    weft record of bench/workloads/mmap_loop (N/4 mmap+munmap
#               pairs: N syscall enter and exit events)
#   weft-probe  weft record --probe-wait of probe_weft (N weft-probe events)
#   ctf         lttng-ust session of probe_lttng (N tracepoint events)
#   perf.data   perf record of the four mmap/munmap syscall tracepoints of
#               mmap_loop (N events)
# Measured, each the median of RUNS (exports: one run): wall time, events/s,
# output lines/s and peak RSS (GNU time's %M) of weft info, stats, dump,
# mem --addr (one pass without the index; the first query, which writes
# FILE.memidx; queries through it), export (perfetto, chrome, parquet);
# weft info and dump again pinned to one CPU (taskset -c 0);
# babeltrace2 (text and counter sink); perf script.
#
# Usage: bench/analysis.sh [--events N] [--runs R] [--out DIR]
# Needs root, gcc, cargo, perf (linux-perf), lttng-tools, liblttng-ust-dev,
# babeltrace2, GNU time.
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=10000000
RUNS=3
OUT=/tmp/weft-bench-analysis
while [[ $# -gt 0 ]]; do
	case $1 in
	--events) N=$2; shift 2 ;;
	--runs) RUNS=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	-h | --help) sed -n '2,22p' "$0"; exit 0 ;;
	*) echo "bench/analysis.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done
die() { echo "bench/analysis.sh: $*" >&2; exit 1; }
log() { echo "# $*" >&2; }
[[ $(id -u) == 0 ]] || die "needs root (weft record, perf record of tracepoints, lttng-sessiond)"
for t in perf lttng babeltrace2 /usr/bin/time cc cargo taskset; do
	command -v "$t" >/dev/null || die "$t not found (apt-get install linux-perf lttng-tools liblttng-ust-dev babeltrace2 time gcc)"
done

cd "$REPO_ROOT"
cargo build --release -q -p weft-cli -p weft-probe || die "cargo build failed"
W=$REPO_ROOT/target/release/weft
WL=$REPO_ROOT/bench/workloads
mkdir -p "$OUT"
rm -rf "${OUT:?}"/*
cc -O2 -o "$OUT/mmap_loop" "$WL/mmap_loop.c"
cc -O2 -Wall -I crates/weft-probe/include -o "$OUT/probe_weft" "$WL/probe_weft.c" \
	target/release/libweft_probe.a -lpthread -ldl -lm -lrt -lgcc_s || die "compiling probe_weft.c failed"
cc -O2 -Wall -I "$WL" -o "$OUT/probe_lttng" "$WL/probe_lttng.c" "$WL/probe_lttng_tp.c" -llttng-ust -ldl -lpthread ||
	die "compiling probe_lttng.c failed (apt-get install liblttng-ust-dev)"
PAIRS=$((N / 4))

log "recording the traces ($N events each)"
"$W" record -q -o "$OUT/sys.weft" -- "$OUT/mmap_loop" "$PAIRS" >/dev/null
BENCH_WAIT_ENABLED=3000 "$W" record -q --probe-wait 100ms -o "$OUT/probe.weft" -- "$OUT/probe_weft" "$N" 1 >/dev/null
pgrep -x lttng-sessiond >/dev/null || lttng-sessiond --daemonize --no-kernel >/dev/null 2>&1 || true
sleep 1
sess=analysis-$$
{ lttng create "$sess" --output="$OUT/ctf" && lttng enable-event -u -s "$sess" 'bench:*' &&
	lttng start "$sess"; } >/dev/null || die "lttng session setup failed"
BENCH_WAIT_ENABLED=3000 "$OUT/probe_lttng" "$N" 1 >/dev/null
lttng stop "$sess" >/dev/null
lttng destroy "$sess" >/dev/null
perf record -q -o "$OUT/perf.data" -m 16M \
	-e syscalls:sys_enter_mmap,syscalls:sys_exit_mmap,syscalls:sys_enter_munmap,syscalls:sys_exit_munmap \
	-- "$OUT/mmap_loop" "$PAIRS" >/dev/null 2>"$OUT/perf-record.log" || die "perf record failed: $(tail -n1 "$OUT/perf-record.log")"

weft_events() { "$W" info "$1" | awk '/^events:/ { print $2 }'; }
E_SYS=$(weft_events "$OUT/sys.weft")
E_PROBE=$(weft_events "$OUT/probe.weft")
E_CTF=$(babeltrace2 "$OUT/ctf" -c sink.utils.counter 2>/dev/null | awk '/Event messages/ { n = $1 } END { print n }' | tr -d ',')
E_PERF=$(perf script -i "$OUT/perf.data" 2>/dev/null | wc -l)
log "events: weft-sys $E_SYS, weft-probe $E_PROBE, ctf $E_CTF, perf.data $E_PERF"
# An address mmap_loop mapped (and unmapped) over and over: the worst case,
# its history as long as the loop. The loop's mmaps are the most frequent result.
ADDR=$("$W" dump "$OUT/sys.weft" --event mmap 2>/dev/null | awk -F'= ' '/mmap\(/ { split($NF, a, " "); n[a[1]]++ }
	END { for (k in n) if (n[k] > best) { best = n[k]; addr = k } print addr }' || true)

# measure NAME EVENTS RUNS CMD...: prints "NAME EVENTS LINES WALL RSS_KIB"
# (medians), the command's stdout counted as lines.
measure() {
	local name=$1 events=$2 runs=$3; shift 3
	local walls=() rss=() lines=0
	for ((r = 0; r < runs; r++)); do
		/usr/bin/time -f "%e %M" -o "$OUT/time" "$@" 2>/dev/null | wc -l >"$OUT/lines"
		lines=$(cat "$OUT/lines")
		read -r w m <"$OUT/time"
		walls+=("$w"); rss+=("$m")
	done
	local mw mr
	mw=$(printf '%s\n' "${walls[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
	mr=$(printf '%s\n' "${rss[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
	echo "$name $events $lines $mw $mr"
}

{
	measure "weft-info(sys)" "$E_SYS" "$RUNS" "$W" info "$OUT/sys.weft"
	measure "weft-stats(sys)" "$E_SYS" "$RUNS" "$W" stats "$OUT/sys.weft"
	measure "weft-dump(sys)" "$E_SYS" "$RUNS" "$W" dump "$OUT/sys.weft"
	measure "weft-mem-addr-one-pass(sys)" "$E_SYS" "$RUNS" "$W" mem "$OUT/sys.weft" --addr 0x10000 --no-index
	measure "weft-mem-addr-first(sys)" "$E_SYS" 1 "$W" mem "$OUT/sys.weft" --addr 0x20000
	measure "weft-mem-addr-indexed(sys)" "$E_SYS" "$RUNS" "$W" mem "$OUT/sys.weft" --addr 0x10000
	measure "weft-mem-reused-addr-indexed(sys)" "$E_SYS" 1 "$W" mem "$OUT/sys.weft" --addr "${ADDR:-0x10000}"
	measure "weft-export-perfetto(sys)" "$E_SYS" 1 "$W" export "$OUT/sys.weft" --format perfetto -o "$OUT/x.pftrace"
	measure "weft-export-chrome(sys)" "$E_SYS" 1 "$W" export "$OUT/sys.weft" --format chrome -o "$OUT/x.json"
	measure "weft-export-parquet(sys)" "$E_SYS" 1 "$W" export "$OUT/sys.weft" --format parquet -o "$OUT/x.parquet"
	rm -rf "$OUT/x.pftrace" "$OUT/x.json" "$OUT/x.parquet"
	measure "perf-script(perf.data)" "$E_PERF" "$RUNS" perf script -i "$OUT/perf.data"
	measure "weft-info(probe)" "$E_PROBE" "$RUNS" "$W" info "$OUT/probe.weft"
	# Decoding on one core: the reader's indexing thread shares it.
	measure "weft-info-1cpu(sys)" "$E_SYS" "$RUNS" taskset -c 0 "$W" info "$OUT/sys.weft"
	measure "weft-info-1cpu(probe)" "$E_PROBE" "$RUNS" taskset -c 0 "$W" info "$OUT/probe.weft"
	measure "weft-dump-1cpu(probe)" "$E_PROBE" "$RUNS" taskset -c 0 "$W" dump "$OUT/probe.weft"
	measure "weft-dump(probe)" "$E_PROBE" "$RUNS" "$W" dump "$OUT/probe.weft"
	measure "babeltrace2(ctf)" "$E_CTF" "$RUNS" babeltrace2 "$OUT/ctf"
	measure "babeltrace2-counter(ctf)" "$E_CTF" "$RUNS" babeltrace2 "$OUT/ctf" -c sink.utils.counter
} | tee "$OUT/results.txt" | awk '
	BEGIN { printf "%-28s %10s %10s %8s %12s %12s %9s\n", "command", "events", "lines", "wall s", "M events/s", "M lines/s", "RSS MiB" }
	{ printf "%-28s %10d %10d %8.2f %12.2f %12.2f %9.0f\n", $1, $2, $3, $4, $2 / $4 / 1e6, $3 / $4 / 1e6, $5 / 1024 }
	$1 == "babeltrace2(ctf)" { bt = $3 / $4 } $1 == "perf-script(perf.data)" { ps = $3 / $4 }
	{ rate[$1] = $3 / $4 }
	END {
		print ""
		for (k in rate) if (k ~ /^weft-dump/) printf "%s prints %.2fx the lines/s of babeltrace2 and %.2fx those of perf script\n", k, rate[k] / bt, rate[k] / ps
	}'
log "raw figures in $OUT/results.txt"
