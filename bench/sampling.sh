#!/usr/bin/env bash
# bench/sampling.sh - CPU sampling with user stacks: weft vs perf, same run.
#
# Workload: crates/weft-cli/tests/sampling/hot.c (single-threaded, CPU-bound,
# main -> hot_outer -> middle -> leaf_work), compiled with
# `cc -O2 -g -fomit-frame-pointer`, so stacks need DWARF unwinding. Its
# argument is calibrated so that it runs ~3 s (part a) and ~5 s (part b)
# untraced (override with HOT_N_A / HOT_N_B).
#
# (a) Recording overhead at 999 Hz, R runs interleaved, median wall time of
#     the whole command (tracer start-up and flush included):
#       untraced   hot N
#       weft       weft record -q --sample 999 -o X -- hot N
#       perf       perf record -q -F 999 --call-graph dwarf -o Y -- hot N
#     plus the same tracers around `true`, to show their fixed start/stop cost.
# (b) Post-processing of a sample-rich recording (~100k samples):
#       weft record -q --sample RATE -o F -- hot N_B     (RATE default 20000)
#       perf record -q -F RATE --call-graph dwarf -o Y -- hot N_B
#     then, each under /usr/bin/time -v (wall time, peak RSS):
#       weft report F --no-cache; weft report F (writes F.symcache);
#       weft report F (uses it); perf report --stdio -i Y; perf script -i Y
#     Sample counts: `weft info F`, `perf report --stats -i Y`.
#
# Usage: bench/sampling.sh [--runs R] [--out DIR] [--rate HZ] [--keep]
# Environment: WEFT, CC, BENCH_RUNS, BENCH_OUT, HOT_N_A, HOT_N_B,
#   REPORT_RUNS (repetitions of the part-b post-processing sequence, default 1).
# Needs root, perf, GNU time (apt-get install time).
# Outputs in OUT: results.md (also on stdout), logs/ (tool outputs), traces.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

RUNS=${BENCH_RUNS:-3}
OUT=${BENCH_OUT:-}
RATE=20000
KEEP=0
REPORT_RUNS=${REPORT_RUNS:-1}
WEFT=${WEFT:-$REPO_ROOT/target/release/weft}
CC=${CC:-cc}

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "sampling.sh: $*" >&2; exit 2; }
log() { echo "[sampling] $*" >&2; }

while [[ $# -gt 0 ]]; do
	case $1 in
	--runs) RUNS=${2:?}; shift ;;
	--out) OUT=${2:?}; shift ;;
	--rate) RATE=${2:?}; shift ;;
	--keep) KEEP=1 ;;
	-h|--help) usage; exit 0 ;;
	*) die "unknown option '$1' (see --help)" ;;
	esac
	shift
done
[[ $(id -u) == 0 ]] || die "needs root"
[[ -x $WEFT ]] || die "$WEFT missing: cargo build --release"
PERF=$(command -v perf) || die "perf not installed (apt-get install linux-perf)"
[[ -x /usr/bin/time ]] || die "/usr/bin/time missing (apt-get install time)"

if [[ -z $OUT ]]; then OUT=$(mktemp -d /tmp/weft-sampling-bench.XXXXXX); else mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd); fi
BIN=$OUT/bin LOGS=$OUT/logs TR=$OUT/traces
mkdir -p "$BIN" "$LOGS" "$TR"
log "results dir: $OUT"

"$CC" -O2 -g -fomit-frame-pointer -o "$BIN/hot" "$REPO_ROOT/crates/weft-cli/tests/sampling/hot.c"
HOT=$BIN/hot

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit
	if (NR % 2) printf "%.6f\n", v[(NR + 1) / 2]; else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
now_ns() { date +%s%N; }
secs_since() { awk -v a="$1" -v b="$(now_ns)" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }
# timed LOG CMD... -> prints wall seconds; CMD's stdout+stderr go to LOG
timed() { local log=$1; shift; local t0; t0=$(now_ns); "$@" >"$log" 2>&1 </dev/null || echo "exit $?" >>"$log"; secs_since "$t0"; }
weft_samples() { # samples in a weft trace: the kernel:sample count of weft info's "events by name"
	"$WEFT" info "$1" >"$2" 2>&1 || true
	awk '$2 == "kernel:sample" { print $1; exit }' "$2"; }
perf_samples() { # SAMPLE records (and LOST_SAMPLES) of perf report --stats
	"$PERF" report --stats -i "$1" >"$2" 2>&1 || true
	awk '/^Aggregated stats/ { a = 1 } a && $1 == "SAMPLE" { s = $3 } a && $1 == "LOST_SAMPLES" { l = $3 }
		a && $1 == "LOST" { lr = $3 } END { print s + 0, l + 0, lr + 0 }' "$2"; }

# ---------------------------------------------------------- calibration
CAL_N=400000
t=$(timed "$LOGS/calibrate.log" "$HOT" "$CAL_N")
N_A=${HOT_N_A:-$(awk -v n=$CAL_N -v t="$t" 'BEGIN { printf "%d", n * 3 / t }')}
N_B=${HOT_N_B:-$(awk -v n=$CAL_N -v t="$t" 'BEGIN { printf "%d", n * 5 / t }')}
log "hot $CAL_N took $t s -> N_A=$N_A (~3 s), N_B=$N_B (~5 s)"
MAXRATE0=$(cat /proc/sys/kernel/perf_event_max_sample_rate)

# ------------------------------------------------------------ part (a)
declare -A WALL=()
for ((r = 1; r <= RUNS; r++)); do
	for c in untraced weft perf; do
		case $c in
		untraced) cmd=("$HOT" "$N_A") ;;
		weft) rm -f "$TR/a.weft"; cmd=("$WEFT" record -q --sample 999 -o "$TR/a.weft" -- "$HOT" "$N_A") ;;
		perf) rm -f "$TR/a.perf.data"; cmd=("$PERF" record -q -F 999 --call-graph dwarf -o "$TR/a.perf.data" -- "$HOT" "$N_A") ;;
		esac
		w=$(timed "$LOGS/a.$c.$r.log" "${cmd[@]}")
		log "(a) run $r $c: $w s"
		WALL[$c]+="$w "
	done
done
A_WEFT_SIZE=$(stat -c %s "$TR/a.weft")
A_PERF_SIZE=$(stat -c %s "$TR/a.perf.data")
A_WEFT_SAMPLES=$(weft_samples "$TR/a.weft" "$LOGS/a.weft.info")
read -r A_PERF_SAMPLES A_PERF_LOST _ < <(perf_samples "$TR/a.perf.data" "$LOGS/a.perf.stats")
for c in weft perf; do
	for r in 1 2 3; do
		case $c in
		weft) cmd=("$WEFT" record -q --sample 999 -o "$TR/t.weft" -- true) ;;
		perf) cmd=("$PERF" record -q -F 999 --call-graph dwarf -o "$TR/t.perf.data" -- true) ;;
		esac
		WALL[$c-true]+="$(timed "$LOGS/a.$c-true.$r.log" "${cmd[@]}") "
	done
done
rm -f "$TR/t.weft" "$TR/t.perf.data"

# ------------------------------------------------------------ part (b)
log "(b) recording $RATE Hz, hot $N_B"
rm -f "$TR/b.weft" "$TR/b.weft.symcache" "$TR/b.perf.data"
B_WEFT_REC=$(timed "$LOGS/b.weft.record.log" "$WEFT" record --sample "$RATE" -o "$TR/b.weft" -- "$HOT" "$N_B")
B_PERF_REC=$(timed "$LOGS/b.perf.record.log" "$PERF" record -F "$RATE" --call-graph dwarf -o "$TR/b.perf.data" -- "$HOT" "$N_B")
MAXRATE1=$(cat /proc/sys/kernel/perf_event_max_sample_rate)
B_WEFT_SIZE=$(stat -c %s "$TR/b.weft")
B_PERF_SIZE=$(stat -c %s "$TR/b.perf.data")
B_WEFT_SAMPLES=$(weft_samples "$TR/b.weft" "$LOGS/b.weft.info")
read -r B_PERF_SAMPLES B_PERF_LOST _ < <(perf_samples "$TR/b.perf.data" "$LOGS/b.perf.stats")

# tv LOG CMD... -> "wall_s maxrss_kb" from GNU time -v; CMD's stdout to LOG.out
tv() {
	local log=$1; shift
	/usr/bin/time -v -o "$log.time" "$@" >"$log.out" 2>"$log.err" </dev/null || echo "exit $?" >>"$log.err"
	awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i] }
		/Maximum resident set size/ { m = $2 } END { printf "%.2f %d\n", s, m }' "$log.time"
}
declare -A POST=()
for ((r = 1; r <= REPORT_RUNS; r++)); do
	rm -f "$TR/b.weft.symcache"
	POST[weft-nocache]+="$(tv "$LOGS/b.report-nocache.$r" "$WEFT" report "$TR/b.weft" --no-cache);"
	POST[weft-cache1]+="$(tv "$LOGS/b.report-cache1.$r" "$WEFT" report "$TR/b.weft");"
	POST[weft-cache2]+="$(tv "$LOGS/b.report-cache2.$r" "$WEFT" report "$TR/b.weft");"
	POST[perf-report]+="$(tv "$LOGS/b.perf-report.$r" "$PERF" report --stdio -i "$TR/b.perf.data");"
	POST[perf-script]+="$(tv "$LOGS/b.perf-script.$r" "$PERF" script -i "$TR/b.perf.data");"
	log "(b) post-processing run $r: ${POST[*]}"
done
SYMCACHE_SIZE=$(stat -c %s "$TR/b.weft.symcache" 2>/dev/null || echo "")

# --------------------------------------------------------------- report
pm() { # pm KEY FIELD(1=wall 2=rss) -> median over runs
	tr ';' '\n' <<<"${POST[$1]}" | awk -v f="$2" 'NF { print $f }' | median; }
wm() { tr ' ' '\n' <<<"${WALL[$1]}" | awk 'NF' | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

REPORT=$OUT/results.md
U=$(wm untraced)
{
	echo "# CPU sampling: weft vs perf"
	echo
	echo "- date: $(date -u '+%Y-%m-%d %H:%M:%SZ'), kernel $(uname -r), $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
	echo "- $("$WEFT" --version); $("$PERF" version); workload hot.c built with $CC -O2 -g -fomit-frame-pointer"
	echo "- kernel.perf_event_max_sample_rate: $MAXRATE0 before, $MAXRATE1 after the part-b recordings"
	echo
	echo "## (a) Recording overhead at 999 Hz: hot $N_A, $RUNS runs interleaved, median wall of the whole command"
	echo
	echo "| config | median wall s | slowdown vs untraced | all runs s | output | samples |"
	echo "|---|---|---|---|---|---|"
	echo "| untraced | $(printf %.3f "$U") | 1.00x | ${WALL[untraced]}| - | - |"
	echo "| weft record -q --sample 999 | $(printf %.3f "$(wm weft)") | $(ratio "$(wm weft)" "$U")x | ${WALL[weft]}| $(mib "$A_WEFT_SIZE") | ${A_WEFT_SAMPLES:-?} |"
	echo "| perf record -F 999 --call-graph dwarf | $(printf %.3f "$(wm perf)") | $(ratio "$(wm perf)" "$U")x | ${WALL[perf]}| $(mib "$A_PERF_SIZE") | ${A_PERF_SAMPLES:-?} (lost $A_PERF_LOST) |"
	echo
	echo "Fixed cost, the same commands around \`true\` (median of 3): weft $(printf %.3f "$(wm weft-true)") s, perf $(printf %.3f "$(wm perf-true)") s."
	echo
	echo "## (b) Post-processing: hot $N_B recorded at $RATE Hz"
	echo
	echo "| recording | wall s | file | samples | lost |"
	echo "|---|---|---|---|---|"
	echo "| weft record --sample $RATE | $B_WEFT_REC | $(mib "$B_WEFT_SIZE") | ${B_WEFT_SAMPLES:-?} | $(sed -n 's/^weft: recorded .* \([0-9]*\) lost.*/\1/p' "$LOGS/b.weft.record.log") (summary) |"
	echo "| perf record -F $RATE --call-graph dwarf | $B_PERF_REC | $(mib "$B_PERF_SIZE") | ${B_PERF_SAMPLES:-?} | $B_PERF_LOST (LOST_SAMPLES) |"
	echo
	echo "| command | wall s | peak RSS | perf report / this (wall) |"
	echo "|---|---|---|---|"
	PR=$(pm perf-report 1)
	for k in weft-nocache weft-cache1 weft-cache2 perf-report perf-script; do
		case $k in
		weft-nocache) name="weft report F --no-cache" ;;
		weft-cache1) name="weft report F (1st: writes F.symcache)" ;;
		weft-cache2) name="weft report F (2nd: uses F.symcache)" ;;
		perf-report) name="perf report --stdio -i Y" ;;
		perf-script) name="perf script -i Y" ;;
		esac
		w=$(pm $k 1) m=$(pm $k 2)
		echo "| $name | $(printf %.2f "$w") | $(awk -v k="$m" 'BEGIN { printf "%.0f MiB", k / 1024 }') | $(ratio "$PR" "$w")x |"
	done
	echo
	echo "symcache: $(awk -v b="${SYMCACHE_SIZE:-0}" 'BEGIN { printf "%.1f KiB", b / 1024 }'); 2nd cached run vs --no-cache: $(ratio "$(pm weft-nocache 1)" "$(pm weft-cache2 1)")x faster;" \
		"post-processing runs: $REPORT_RUNS (median)."
	echo
	echo "### weft report (top lines)"
	echo
	echo '```'
	head -n 14 "$LOGS/b.report-cache2.1.out"
	echo '```'
	echo
	echo "### perf report --stdio (top lines without comments)"
	echo
	echo '```'
	# awk, not `grep | head`: head exiting early would SIGPIPE grep, which
	# pipefail + set -e turn into an abort of the whole script.
	awk '!/^#/ && !/^$/ && n++ < 14' "$LOGS/b.perf-report.1.out"
	echo '```'
} >"$REPORT"
[[ $KEEP == 0 ]] && rm -f "$TR"/*.weft "$TR"/*.perf.data "$TR"/*.symcache "$TR"/*.old
cat "$REPORT"
log "results: $REPORT"
