#!/usr/bin/env bash
# bench/syscalls.sh - slowdown and trace size of syscall-heavy workloads under
# weft and peer tracers, all measured in the same run.
#
# Workloads (bench/workloads/*.c, compiled here with `cc -O2`):
#   mmap  mmap_loop N   N mmap/munmap pairs (2*N syscalls)       default N=1000000
#   fork  fork_loop N   N fork + child _exit(0) + parent waitpid  default N=2000
#   rate  getppid_loop N  N getppid on each of 2 threads at once: the
#                       highest syscall rate reachable here      default N=1000000
#   files files_loop N  N openat/read(4 KiB)/close of real files (and a
#                       missing one every 64): paths and data     default N=20000
#   python python_loop N  `import json` from scratch N times under
#                       /usr/bin/python3 (~80 syscalls each)      default N=200
# Each workload times only its own loop (CLOCK_MONOTONIC) and reports
# `elapsed_ns=... utime_us=... stime_us=...` on stderr and into the file named
# by $WEFT_BENCH_RESULT, so tracer start-up (bpftrace needs ~1 s to start,
# `perf record -e syscalls:*` much longer) never counts as loop time.
#
# Configurations (--configs, all by default):
#   untraced        the workload alone
#   weft            $WEFT record -o OUT $WEFT_ARGS -- CMD   (no --quiet: with it
#                   weft prints no summary, hence no lost count; stderr is not a
#                   terminal, so there is no live status line either); strings,
#                   buffers and structs captured (256 bytes each)
#   weft-noargs     the same with --no-args: pointers only, no eBPF
#   weft-live       weft with --live --live-output OUT.live.txt: the timeline
#                   printed while recording (a file: lines are not dropped)
#   perf-raw        perf record -e 'raw_syscalls:*' -o OUT -- CMD
#   perf-syscalls   perf record -e 'syscalls:sys_enter_*' -e 'syscalls:sys_exit_*' -o OUT -- CMD
#   perf-trace      perf trace -o OUT.txt -- CMD     (text; a file, not /dev/null,
#                   so that its "LOST n events" lines can be counted)
#   strace          strace -f -o /dev/null -- CMD
#   strace-s256     strace -f -s 256 -o /dev/null -- CMD: strings and data
#                   as long as weft keeps them
#   bpftrace        bpftrace -o OUT.txt -c CMD SCRIPT: raw_syscalls enter/exit
#                   filtered on the workload's process tree, one text line
#                   per event
#   bpftrace-str    the same, plus the strings and data weft captures for
#                   openat, newfstatat, execve, read and write (str()/buf(),
#                   BPFTRACE_STRLEN=200, the most bpftrace 0.17 allows)
# perf trace shows pointers: perf 6.1's BPF augmentation compiles its
# program at run time against a kernel build tree (none on this machine).
#
# Reported per workload and configuration (median of R runs, runs interleaved
# round-robin): loop time, slowdown vs untraced, tracer CPU seconds (user+sys
# of the whole tracer command minus the workload tree's own user+sys, as the
# workload reports it via getrusage), total wall time of the command, output
# size, bytes per syscall (size / syscalls; each syscall is an enter + an exit
# event) and lost events where the tool reports them. The syscall count is
# measured once per workload with `perf stat -e raw_syscalls:sys_enter`
# (includes the ~30 start-up syscalls); without perf the nominal count is used.
#
# Usage: bench/syscalls.sh [--quick] [--runs R] [--out DIR] [--workloads "mmap fork"]
#                          [--configs "untraced weft ..."] [--n-mmap N] [--n-fork N] [--n-rate N]
#                          [--n-files N] [--n-py N]
#                          [--timeout SECONDS] [--keep]
# Environment: WEFT (weft binary; default <repo>/target/release/weft),
#   WEFT_ARGS (extra `weft record` options, e.g. "--buffer-size 32M"),
#   BENCH_RUNS or R (runs, default 5), BENCH_OUT or OUT (results dir, default a
#   new /tmp/weft-bench.XXXXXX), N_MMAP, N_FORK, N_RATE, N_FILES, N_PY, BENCH_TIMEOUT (per run,
#   default 900 s), CC (default cc).
# Outputs in OUT: results.md (also printed on stdout), runs.csv (every run),
#   logs/ (stderr of every run, perf report --stats, ...), bin/ (workloads).
#   Trace files are deleted after their size is taken unless --keep.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

ALL_CONFIGS="untraced weft weft-noargs weft-live perf-raw perf-syscalls perf-trace strace strace-s256 bpftrace bpftrace-str"
ALL_WORKLOADS="mmap fork rate files python"

RUNS=${BENCH_RUNS:-${R:-5}}
OUT=${BENCH_OUT:-${OUT:-}}
N_MMAP=${N_MMAP:-1000000}
N_FORK=${N_FORK:-2000}
N_RATE=${N_RATE:-1000000}
N_FILES=${N_FILES:-20000}
N_PY=${N_PY:-200}
TIMEOUT=${BENCH_TIMEOUT:-900}
CONFIGS=$ALL_CONFIGS
WORKLOADS=$ALL_WORKLOADS
KEEP=0
WEFT=${WEFT:-$REPO_ROOT/target/release/weft}
CC=${CC:-cc}

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "syscalls.sh: $*" >&2; exit 2; }
log() { echo "[bench] $*" >&2; }

while [[ $# -gt 0 ]]; do
	case $1 in
	--quick) N_MMAP=100000; N_FORK=500; N_RATE=200000; N_FILES=5000; N_PY=50; RUNS=2 ;;
	--runs) RUNS=${2:?}; shift ;;
	--out) OUT=${2:?}; shift ;;
	--workloads) WORKLOADS=${2:?}; shift ;;
	--configs) CONFIGS=${2:?}; shift ;;
	--n-mmap) N_MMAP=${2:?}; shift ;;
	--n-fork) N_FORK=${2:?}; shift ;;
	--n-rate) N_RATE=${2:?}; shift ;;
	--n-files) N_FILES=${2:?}; shift ;;
	--n-py) N_PY=${2:?}; shift ;;
	--timeout) TIMEOUT=${2:?}; shift ;;
	--keep) KEEP=1 ;;
	-h|--help) usage; exit 0 ;;
	*) die "unknown option '$1' (see --help)" ;;
	esac
	shift
done

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "runs must be a positive integer, got '$RUNS'"
[[ $N_MMAP =~ ^[1-9][0-9]*$ && $N_FORK =~ ^[1-9][0-9]*$ && $N_RATE =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer"
for c in $CONFIGS; do [[ " $ALL_CONFIGS " == *" $c "* ]] || die "unknown config '$c' (known: $ALL_CONFIGS)"; done
for w in $WORKLOADS; do [[ " $ALL_WORKLOADS " == *" $w "* ]] || die "unknown workload '$w' (known: $ALL_WORKLOADS)"; done
# untraced is the baseline for the slowdown column: always run it.
[[ " $CONFIGS " == *" untraced "* ]] || CONFIGS="untraced $CONFIGS"

if [[ -z $OUT ]]; then
	OUT=$(mktemp -d /tmp/weft-bench.XXXXXX)
else
	mkdir -p "$OUT"
	OUT=$(cd "$OUT" && pwd)
fi
mkdir -p "$OUT/bin" "$OUT/logs" "$OUT/traces"
BIN=$OUT/bin
LOGS=$OUT/logs
TRACES=$OUT/traces
RUNS_CSV=$OUT/runs.csv
echo "workload,config,run,rc,elapsed_ns,workload_cpu_us,cmd_user_s,cmd_sys_s,cmd_wall_s,out_bytes,lost" >"$RUNS_CSV"
log "results dir: $OUT"

# ---------------------------------------------------------------- workloads
command -v "$CC" >/dev/null || die "C compiler '$CC' not found (apt-get install gcc)"
for w in mmap fork getppid; do
	"$CC" -O2 -Wall -pthread -o "$BIN/${w}_loop" "$SCRIPT_DIR/workloads/${w}_loop.c" ||
		die "compiling workloads/${w}_loop.c failed"
done
ln -sf getppid_loop "$BIN/rate_loop"
"$CC" -O2 -Wall -o "$BIN/files_loop" "$SCRIPT_DIR/workloads/files_loop.c" || die "compiling workloads/files_loop.c failed"
# /usr/bin/python3 itself, not a pyenv shim found first in PATH.
sed '1s|.*|#!/usr/bin/python3|' "$SCRIPT_DIR/workloads/python_loop" >"$BIN/python_loop"
chmod +x "$BIN/python_loop"

wl_n() { case $1 in mmap) echo "$N_MMAP" ;; fork) echo "$N_FORK" ;; rate) echo "$N_RATE" ;; files) echo "$N_FILES" ;; python) echo "$N_PY" ;; esac; }
# Nominal syscalls per run, used only when perf stat cannot count them:
# mmap: mmap+munmap per iteration; fork: clone, wait4, child exit_group.
wl_nominal_syscalls() { case $1 in mmap) echo $((2 * N_MMAP)) ;; fork) echo $((3 * N_FORK)) ;; rate) echo $((2 * N_RATE)) ;; files) echo $((3 * N_FILES)) ;; python) echo $((80 * N_PY)) ;; esac; }

# ------------------------------------------------------- tool availability
declare -A SKIP=()   # config -> reason it cannot run
declare -A SKIP_WL=() # "workload:config" -> reason it is not run for that workload
declare -A VERSION=()

if [[ $WEFT != /* && $WEFT == */* ]]; then WEFT=$(pwd)/$WEFT; fi
if [[ $WEFT != */* ]]; then WEFT=$(command -v "$WEFT" || echo "$WEFT"); fi
if [[ ! -x $WEFT ]]; then
	SKIP[weft]="weft binary not found at $WEFT (build it with 'cargo build --release' or set WEFT=...)"
	SKIP[weft-noargs]=${SKIP[weft]}
	SKIP[weft-live]=${SKIP[weft]}
else
	VERSION[weft]=$("$WEFT" --version 2>/dev/null | head -n1 || true)
fi

PERF=$(command -v perf || true)
if [[ -z $PERF ]]; then
	for c in perf-raw perf-syscalls perf-trace; do SKIP[$c]="perf not installed (apt-get install linux-perf)"; done
else
	VERSION[perf]=$("$PERF" version 2>/dev/null | head -n1 || true)
	if ! err=$("$PERF" stat -e raw_syscalls:sys_enter -o /dev/null -- true 2>&1); then
		why="perf cannot open raw_syscalls tracepoints: $(grep -v '^$' <<<"$err" | head -n1)"
		for c in perf-raw perf-syscalls perf-trace; do SKIP[$c]=$why; done
	fi
fi

if command -v strace >/dev/null; then
	VERSION[strace]=$(strace -V 2>/dev/null | head -n1 || true)
else
	SKIP[strace]="strace not installed (apt-get install strace)"
	SKIP[strace-s256]=${SKIP[strace]}
fi

if command -v bpftrace >/dev/null; then
	VERSION[bpftrace]=$(bpftrace --version 2>/dev/null | head -n1 || true)
	# bpftrace -c splits its argument on spaces without a shell.
	[[ $BIN =~ [[:space:]] ]] && SKIP[bpftrace]="results dir '$OUT' contains whitespace; bpftrace -c cannot run from it"
	[[ -n ${SKIP[bpftrace]:-} ]] && SKIP[bpftrace-str]=${SKIP[bpftrace]}
else
	SKIP[bpftrace]="bpftrace not installed (apt-get install bpftrace)"
	SKIP[bpftrace-str]=${SKIP[bpftrace]}
fi

# Every fork copies the inherited per-syscall perf events (~1450 of them), which
# makes fork_loop ~950x slower (72 s for N=500 on a 2-core VM): too slow to be
# useful by default.
if [[ ${BENCH_PERF_SYSCALLS_FORK:-0} != 1 ]]; then
	SKIP_WL[fork:perf-syscalls]="each fork copies ~1450 inherited perf events (measured ~950x slowdown at N=500); set BENCH_PERF_SYSCALLS_FORK=1 to run it"
fi

# bpftrace program: follow the process tree of the -c child (cpid) through
# sched_process_fork, and write one text line per syscall enter/exit, roughly
# the information a syscall tracer records (time, tid, nr, 3 args / ret).
BT_SCRIPT=$OUT/syscalls.bt
cat >"$BT_SCRIPT" <<'EOF'
tracepoint:sched:sched_process_fork
/ (uint32)args->parent_pid == cpid || @tree[args->parent_pid] /
{ @tree[args->child_pid] = 1; }

tracepoint:sched:sched_process_exit
/ @tree[tid] /
{ delete(@tree[tid]); }

tracepoint:raw_syscalls:sys_enter
/ pid == cpid || @tree[pid] /
{ printf("%llu %d E %ld %lx %lx %lx\n", nsecs, tid, args->id, args->args[0], args->args[1], args->args[2]); }

tracepoint:raw_syscalls:sys_exit
/ pid == cpid || @tree[pid] /
{ printf("%llu %d X %ld %ld\n", nsecs, tid, args->id, args->ret); }

END { clear(@tree); }
EOF
# The same, plus the strings and data weft captures for the calls of the
# files and python workloads.
BT_STR_SCRIPT=$OUT/syscalls-str.bt
cat "$BT_SCRIPT" - >"$BT_STR_SCRIPT" <<'EOF'
tracepoint:syscalls:sys_enter_openat
/ pid == cpid || @tree[pid] /
{ printf("%d openat %s\n", tid, str(args->filename)); }

tracepoint:syscalls:sys_enter_newfstatat
/ pid == cpid || @tree[pid] /
{ printf("%d newfstatat %s\n", tid, str(args->filename)); }

tracepoint:syscalls:sys_enter_execve
/ pid == cpid || @tree[pid] /
{ printf("%d execve %s\n", tid, str(args->filename)); }

tracepoint:syscalls:sys_enter_write
/ pid == cpid || @tree[pid] /
{ printf("%d write %r\n", tid, buf(args->buf, args->count)); }

tracepoint:syscalls:sys_enter_read
/ pid == cpid || @tree[pid] /
{ @rbuf[tid] = args->buf; }

tracepoint:syscalls:sys_exit_read
/ @rbuf[tid] /
{ if (args->ret > 0) { printf("%d read %r\n", tid, buf(@rbuf[tid], args->ret)); } delete(@rbuf[tid]); }
EOF
export BPFTRACE_MAP_KEYS_MAX=${BPFTRACE_MAP_KEYS_MAX:-65536}

# --------------------------------------------------------------- helpers
median() { # numbers on stdin -> median (mean of the middle two when even)
	sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) exit
		if (NR % 2) printf "%.6f\n", v[(NR + 1) / 2]
		else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

human_bytes() {
	awk -v b="$1" 'BEGIN {
		split("B KiB MiB GiB TiB", u, " "); i = 1
		while (b >= 1024 && i < 5) { b /= 1024; i++ }
		printf (i == 1 ? "%d %s" : "%.1f %s"), b, u[i] }'
}

# Sum of the counts on lines mentioning "lost" (case-insensitive) in the given
# files: the number after "lost", else the number before it. Prints nothing
# when no such line exists.
lost_from_lines() {
	local f
	for f in "$@"; do [[ -s $f ]] && grep -ai 'lost' "$f" || true; done | awk '
		{ line = tolower($0); n = ""
		  # "lost 4 chunks", "Lost 12 events", "lost: 3", "lost=0"
		  if (match(line, /lost[ \t]*[:=]?[ \t]*[0-9]+/)) { s = substr(line, RSTART, RLENGTH); gsub(/[^0-9]/, "", s); n = s }
		  # "17 lost", "17 events lost"
		  else if (match(line, /[0-9]+[ \t]*([a-z_]+[ \t]+)?lost/)) { s = substr(line, RSTART, RLENGTH); sub(/[^0-9].*/, "", s); n = s }
		  # "lost events: 5"
		  else if (match(line, /lost[^0-9]*[0-9]+/)) { s = substr(line, RSTART, RLENGTH); gsub(/[^0-9]/, "", s); n = s }
		  if (n != "") { sum += n; found = 1 } }
		END { if (found) print sum }'
}

# perf record: lost samples = sum of the per-event LOST_SAMPLES counters of
# `perf report --stats`, plus (older perf) the aggregated LOST count.
perf_lost() {
	local data=$1 stats=$2
	"$PERF" report --stats -i "$data" >"$stats" 2>&1 || { echo "?"; return; }
	awk '/^Aggregated stats:/ { agg = 1; next }
		/stats:$/ { agg = 0; per = 1; next }
		agg && $1 == "LOST" { lost_records = $3 }
		per && $1 == "LOST_SAMPLES" { samples += $3; have = 1 }
		END { if (have) print samples; else print lost_records + 0 }' "$stats"
}

# weft's summary: "weft: recorded E events (S syscalls) in T s, L lost, ..."
weft_lost() {
	sed -n 's/^weft: recorded .*[^0-9]\([0-9][0-9]*\) lost.*/\1/p' "$1" 2>/dev/null | tail -n1 || true
}
# weft's own CPU report: "weft: recorder CPU time X s (...)"
weft_self_cpu() {
	sed -n 's/^weft: recorder CPU time \([0-9.][0-9.]*\) s.*/\1/p' "$1" 2>/dev/null | tail -n1 || true
}

last_error_line() { # last meaningful stderr line of a failed run
	grep -av -e '^elapsed_ns=' -e '^[[:space:]]*$' "$1" 2>/dev/null | tail -n1 | cut -c1-160 || true
}

# Syscall count of one untraced run of each workload, via perf stat.
declare -A SYSCALLS=() SYSCALLS_SRC=()
for w in $WORKLOADS; do
	SYSCALLS[$w]=$(wl_nominal_syscalls "$w")
	SYSCALLS_SRC[$w]="nominal"
	if [[ -n $PERF ]]; then
		if "$PERF" stat -x, -e raw_syscalls:sys_enter -o "$LOGS/$w.perf-stat.csv" \
			-- "$BIN/${w}_loop" "$(wl_n "$w")" 2>/dev/null; then
			cnt=$(awk -F, '$3 ~ /raw_syscalls:sys_enter/ { print $1 }' "$LOGS/$w.perf-stat.csv")
			if [[ $cnt =~ ^[0-9]+$ ]]; then
				SYSCALLS[$w]=$cnt
				SYSCALLS_SRC[$w]="perf stat"
			fi
		fi
	fi
	log "$w: N=$(wl_n "$w"), ${SYSCALLS[$w]} syscalls per run (${SYSCALLS_SRC[$w]})"
done

# ------------------------------------------------------------ one run
# run_one WORKLOAD CONFIG RUN -> appends a line to runs.csv
run_one() {
	local w=$1 c=$2 r=$3
	local n; n=$(wl_n "$w")
	local exe=$BIN/${w}_loop
	local tag=$w.$c.$r
	local errlog=$LOGS/$tag.stderr res=$LOGS/$tag.result tf=$LOGS/$tag.time
	local out="" outsize="" lost="" rc=0
	local -a cmd
	# bpftrace -c runs only executables it can exec itself: the interpreter
	# is named, not found through the script's #! line.
	local -a wcmd=("$exe" "$n")
	[[ $w == python ]] && wcmd=(/usr/bin/python3 "$exe" "$n")
	rm -f "$res" "$tf"
	case $c in
	untraced) cmd=("${wcmd[@]}") ;;
	weft)
		out=$TRACES/$w.weft
		# shellcheck disable=SC2206 # WEFT_ARGS is split on purpose
		cmd=("$WEFT" record -o "$out" ${WEFT_ARGS:-} -- "${wcmd[@]}") ;;
	weft-live)
		out=$TRACES/$w.live.weft
		# shellcheck disable=SC2206
		cmd=("$WEFT" record -o "$out" --live --live-output "$TRACES/$w.live.txt" ${WEFT_ARGS:-} -- "${wcmd[@]}") ;;
	weft-noargs)
		out=$TRACES/$w.noargs.weft
		# shellcheck disable=SC2206
		cmd=("$WEFT" record -o "$out" --no-args ${WEFT_ARGS:-} -- "${wcmd[@]}") ;;
	perf-raw)
		out=$TRACES/$w.perf-raw.data
		cmd=("$PERF" record -e 'raw_syscalls:*' -o "$out" -- "${wcmd[@]}") ;;
	perf-syscalls)
		out=$TRACES/$w.perf-syscalls.data
		cmd=("$PERF" record -e 'syscalls:sys_enter_*' -e 'syscalls:sys_exit_*' -o "$out" -- "${wcmd[@]}") ;;
	perf-trace)
		out=$TRACES/$w.perf-trace.txt
		cmd=("$PERF" trace -o "$out" -- "${wcmd[@]}") ;;
	strace) cmd=(strace -f -o /dev/null -- "${wcmd[@]}") ;;
	strace-s256) cmd=(strace -f -s 256 -o /dev/null -- "${wcmd[@]}") ;;
	bpftrace)
		out=$TRACES/$w.bpftrace.txt
		cmd=(bpftrace -o "$out" -c "${wcmd[*]}" "$BT_SCRIPT") ;;
	bpftrace-str)
		out=$TRACES/$w.bpftrace-str.txt
		cmd=(env BPFTRACE_STRLEN=200 bpftrace -o "$out" -c "${wcmd[*]}" "$BT_STR_SCRIPT") ;;
	esac
	[[ -n $out ]] && rm -f "$out" "$out.old"

	log "$w run $r/$RUNS: $c"
	local TIMEFORMAT='%U %S %R'
	{ time WEFT_BENCH_RESULT=$res timeout -k 10 "$TIMEOUT" "${cmd[@]}" \
		</dev/null >"$LOGS/$tag.stdout" 2>"$errlog"; } 2>"$tf" || rc=$?

	local elapsed="" wcpu="" u="" s="" wall=""
	if [[ -s $res ]]; then
		read -r elapsed wcpu < <(awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
			END { print v["elapsed_ns"], v["utime_us"] + v["stime_us"] }' "$res")
	fi
	[[ -s $tf ]] && read -r u s wall <"$tf"
	if [[ -n $out && -e $out ]]; then
		outsize=$(stat -c %s "$out")
	fi
	case $c in
	perf-raw|perf-syscalls)
		[[ -e $out ]] && lost=$(perf_lost "$out" "$LOGS/$tag.perf-stats") ;;
	perf-trace|bpftrace|bpftrace-str)
		lost=$(lost_from_lines "$errlog" "$out") ; lost=${lost:-0} ;;
	weft|weft-noargs|weft-live) lost=$(weft_lost "$errlog") ;;
	esac
	if [[ $KEEP == 0 && -n $out ]]; then rm -f "$out" "$out.old"; fi
	if [[ $rc == 124 || $rc == 137 ]]; then
		echo "timed out after ${TIMEOUT}s" >>"$errlog"
	fi
	[[ -z $elapsed && $rc == 0 ]] && rc=255 # ran, but no elapsed line
	echo "$w,$c,$r,$rc,$elapsed,$wcpu,$u,$s,$wall,$outsize,$lost" >>"$RUNS_CSV"
	if [[ $rc != 0 ]]; then
		log "  $c failed (exit $rc): $(last_error_line "$errlog")"
	fi
}

# ----------------------------------------------------------------- runs
for w in $WORKLOADS; do
	for ((r = 1; r <= RUNS; r++)); do
		for c in $CONFIGS; do
			[[ -n ${SKIP[$c]:-} || -n ${SKIP_WL[$w:$c]:-} ]] && continue
			run_one "$w" "$c" "$r"
		done
	done
done

# ---------------------------------------------------------------- report
col() { # col WORKLOAD CONFIG FIELD# -> values of successful runs
	awk -F, -v w="$1" -v c="$2" -v f="$3" 'NR > 1 && $1 == w && $2 == c && $4 == 0 && $f != "" { print $f }' "$RUNS_CSV"
}

REPORT=$OUT/results.md
{
	echo "# weft syscall benchmark"
	echo
	echo "- date: $(date -u '+%Y-%m-%d %H:%M:%SZ'), host: $(uname -n), kernel: $(uname -r), cpus: $(nproc)," \
		"cpu: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo '?')"
	echo "- runs per config: $RUNS (median reported; runs interleaved round-robin), per-run timeout ${TIMEOUT}s"
	for t in weft perf strace bpftrace; do
		[[ -n ${VERSION[$t]:-} ]] && echo "- $t: ${VERSION[$t]}"
	done
	echo "- loop time: the workload's own CLOCK_MONOTONIC time of its syscall loop (tracer start-up excluded)."
	echo "- tracer CPU: user+sys of the whole tracer command minus the workload tree's own user+sys (getrusage);" \
		"kernel work done in the traced task's context (tracepoint/BPF handlers, ring-buffer writes) is charged to the workload, not to it."
	echo "- total wall: wall time of the whole command, including tracer start-up and flushing."
	echo "- B/syscall: output size / syscalls; each syscall is an enter and an exit event, so bytes per event is half of it."
	for w in $WORKLOADS; do
		echo
		case $w in
		mmap) echo "## mmap_loop $N_MMAP (mmap+munmap pairs)" ;;
		fork) echo "## fork_loop $N_FORK (fork, child _exit, waitpid)" ;;
		rate) echo "## getppid_loop $N_RATE on 2 threads ($((2 * N_RATE)) getppid calls)" ;;
		files) echo "## files_loop $N_FILES (openat, read 4 KiB, close of real files)" ;;
		python) echo "## python_loop $N_PY (import json from scratch, /usr/bin/python3)" ;;
		esac
		echo
		echo "syscalls per run: ${SYSCALLS[$w]} (${SYSCALLS_SRC[$w]})"
		echo
		echo "| config | runs ok | median loop | slowdown | tracer CPU s | total wall s | output size | B/syscall | lost | notes |"
		echo "|---|---|---|---|---|---|---|---|---|---|"
		base=$(col "$w" untraced 5 | median)
		for c in $CONFIGS; do
			if [[ -n ${SKIP[$c]:-} || -n ${SKIP_WL[$w:$c]:-} ]]; then
				echo "| $c | - | - | - | - | - | - | - | - | skipped: ${SKIP[$c]:-${SKIP_WL[$w:$c]}} |"
				continue
			fi
			ok=$(col "$w" "$c" 5 | wc -l)
			total=$(awk -F, -v w="$w" -v c="$c" 'NR > 1 && $1 == w && $2 == c' "$RUNS_CSV" | wc -l)
			notes=""
			if ((ok < total)); then
				first_bad=$(awk -F, -v w="$w" -v c="$c" 'NR > 1 && $1 == w && $2 == c && $4 != 0 { print $3 " " $4; exit }' "$RUNS_CSV")
				read -r bad_run bad_rc <<<"$first_bad"
				notes="run $bad_run exit $bad_rc: $(last_error_line "$LOGS/$w.$c.$bad_run.stderr" | tr '|' '/')"
			fi
			if ((ok == 0)); then
				echo "| $c | 0/$total | - | - | - | - | - | - | - | failed: $notes |"
				continue
			fi
			med=$(col "$w" "$c" 5 | median)
			loop=$(awk -v ns="$med" -v n="${SYSCALLS[$w]}" 'BEGIN { printf "%.1f ms (%.0f k syscalls/s)", ns / 1e6, n / ns * 1e6 }')
			slow="-"
			[[ -n $base ]] && slow=$(awk -v a="$med" -v b="$base" 'BEGIN { printf "%.2fx", a / b }')
			cpu="-"
			if [[ $c != untraced ]]; then
				# A tracer that never reaps the workload (perf trace) does not
				# have the workload's CPU in its total: then its U+S is its own.
				# perf trace never wait()s for the workload (checked with strace:
				# no wait4/waitid), so nothing is subtracted for it.
				reaps=1; [[ $c == perf-trace ]] && reaps=0
				cpu=$(awk -F, -v w="$w" -v c="$c" -v reaps=$reaps 'NR > 1 && $1 == w && $2 == c && $4 == 0 && $7 != "" {
					t = $7 + $8; if (reaps && t >= $6 / 1e6) t -= $6 / 1e6; print t }' "$RUNS_CSV" | median)
				[[ -n $cpu ]] && cpu=$(printf '%.2f' "$cpu")
				unreaped=$(awk -F, -v w="$w" -v c="$c" -v reaps=$reaps 'NR > 1 && $1 == w && $2 == c && $4 == 0 && $7 != "" &&
					(!reaps || $7 + $8 < $6 / 1e6) { n++ } END { print n + 0 }' "$RUNS_CSV")
				if ((unreaped > 0)); then
					cpu="$cpu*"
					notes="${notes:+$notes; }*workload not reaped by the tracer in $unreaped run(s): CPU is the tracer's own U+S"
				fi
			fi
			if [[ $c == weft* ]]; then
				selfcpu=$(for r in $(col "$w" "$c" 3); do weft_self_cpu "$LOGS/$w.$c.$r.stderr"; done | median)
				[[ -n $selfcpu ]] && notes="${notes:+$notes; }weft's own report: $(printf '%.2f' "$selfcpu") s recorder CPU"
			fi
			wall=$(col "$w" "$c" 9 | median)
			[[ -n $wall ]] && wall=$(printf '%.2f' "$wall")
			size="-"; bps="-"
			sz=$(col "$w" "$c" 10 | median)
			if [[ -n $sz ]]; then
				size=$(human_bytes "$sz")
				bps=$(awk -v s="$sz" -v n="${SYSCALLS[$w]}" 'BEGIN { printf "%.1f", s / n }')
			elif [[ $c == strace || $c == strace-s256 ]]; then
				size="(/dev/null)"
			fi
			lost=$(col "$w" "$c" 11 | paste -sd/ -)
			[[ -z $lost ]] && lost="-"
			echo "| $c | $ok/$total | $loop | $slow | ${cpu:--} | ${wall:--} | $size | $bps | $lost | $notes |"
		done
	done
	echo
	echo "Raw per-run data: runs.csv; stderr of every run: logs/. lost: per-run counts reported by the tool" \
		"(perf record: LOST_SAMPLES of 'perf report --stats'; perf trace/bpftrace: 'LOST'/'Lost' lines; weft: its summary line; '-': not reported)."
} >"$REPORT"

cat "$REPORT"
log "results: $REPORT"
