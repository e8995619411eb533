#!/usr/bin/env bash
# bench/offcpu.sh - cost of off-CPU tracing: weft record --off-cpu against
# perf's own ways of recording where threads block, in the same run.
#
# Workload: bench/workloads/pingpong.c, N round trips of a byte between two
# processes over pipes (2 blocking context switches per trip). Each
# configuration runs R times, interleaved; cells are medians of the wall
# time of the whole command (tracer start-up and flush included):
#   untraced      pingpong N
#   weft          weft record -q --off-cpu --syscalls exit_group -o X -- pingpong N
#   perf-sched    perf sched record -o Y -- pingpong N
#   perf-switch   perf record -e sched:sched_switch -g -o Y -- pingpong N
#                 (the stack at each switch, as weft takes it)
#   bpftrace      an offcputime-style script: the user stack where a
#                 pingpong thread blocks, summed by the time until it runs
#                 again (when bpftrace is installed)
# Usage: bench/offcpu.sh [--runs R] [--n N]
# Environment: WEFT (default target/release/weft), CC. Needs root and perf.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
WEFT=${WEFT:-$REPO/target/release/weft}
RUNS=3
N=200000
while [ $# -gt 0 ]; do
	case $1 in
	--runs) RUNS=$2; shift ;;
	--n) N=$2; shift ;;
	*) echo "usage: $0 [--runs R] [--n N]" >&2; exit 2 ;;
	esac
	shift
done
[ "$(id -u)" = 0 ] || { echo "offcpu: needs root" >&2; exit 1; }
command -v perf >/dev/null || { echo "offcpu: needs perf (apt-get install linux-perf)" >&2; exit 1; }
OUT=$(mktemp -d /tmp/weft-offcpu.XXXXXX)
${CC:-cc} -O2 -o "$OUT/pingpong" "$REPO/bench/workloads/pingpong.c"
P="$OUT/pingpong"
run() { # name command...
	local name=$1; shift
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >/dev/null 2>>"$OUT/$name.log"
	t1=$(date +%s.%N)
	echo "$name $(echo "$t1 - $t0" | bc)" >>"$OUT/times"
}
configs="untraced weft perf-sched perf-switch"
command -v bpftrace >/dev/null && configs="$configs bpftrace"
for r in $(seq 1 "$RUNS"); do
	for c in $configs; do
		case $c in
		untraced) run untraced "$P" "$N" ;;
		weft) run weft "$WEFT" record -q --off-cpu --syscalls exit_group -o "$OUT/w.weft" --force -- "$P" "$N" ;;
		perf-sched) run perf-sched perf sched record -q -o "$OUT/s.data" -- "$P" "$N" ;;
		perf-switch) run perf-switch perf record -q -e sched:sched_switch -g -o "$OUT/p.data" -- "$P" "$N" ;;
		bpftrace) run bpftrace bpftrace -q -e '
			tracepoint:sched:sched_switch {
				if (comm == "pingpong" && args->prev_state != 0) { @start[tid] = nsecs; @stack[tid] = ustack; }
				if (@start[args->next_pid]) {
					@offcpu[@stack[args->next_pid]] = sum(nsecs - @start[args->next_pid]);
					delete(@start[args->next_pid]);
				}
			}
			END { clear(@start); clear(@stack); }' -c "$P $N" ;;
		esac
	done
done
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
base=$(awk '$1=="untraced"{print $2}' "$OUT/times" | median)
echo "offcpu: pingpong $N round trips, $RUNS runs each, median wall time"
for c in $configs; do
	m=$(awk -v c="$c" '$1==c{print $2}' "$OUT/times" | median)
	printf "offcpu: %-12s %8.3f s  %6.2fx\n" "$c" "$m" "$(echo "$m / $base" | bc -l)"
done
blocked=$("$WEFT" report "$OUT/w.weft" --off-cpu --user-only --no-cache -n 1 2>/dev/null | head -1)
echo "offcpu: weft's report: $blocked"
echo "offcpu: results in $OUT"
