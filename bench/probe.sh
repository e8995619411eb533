#!/usr/bin/env bash
# bench/probe.sh - cost of in-process events: weft-probe (Rust and C API)
# against lttng-ust, all measured in the same run.
#
# Programs (each call emits one event with two integers; timed as
# `weft-demo bench` does: 15 batches per thread, median ns/event per thread,
# mean over threads; aggregate events/s = all events / wall time of the loop):
#   weft-rust   target/release/examples/weft-demo bench N [T]: demo:tick {n: u64,
#               thread: u32} (12 payload bytes)
#   weft-rust2  bench/probe-rust (cargo, its own workspace): bench:tick
#               {a: u64, b: u64} through weft_probe::emit!
#   weft-c      bench/workloads/probe_weft.c, C API (WEFT_EVENT/WEFT_EMIT),
#               bench:tick {a: u64, b: u64}, linked with libweft_probe.a
#   lttng       bench/workloads/probe_lttng.c, lttng-ust 2.13 tracepoint
#               bench:tick {a: uint64_t, b: uint64_t}, default channel
#               (per-user buffers, 4 x 512 KiB sub-buffers per CPU, discard)
#
# Configurations (see run_one below; each run R times, interleaved
# round-robin, cells are medians over runs):
#   dis-*     the program alone: disabled cost (no weft; no lttng session)
#   en-*      weft record -o X -e PATTERN -- PROG N   (default buffers), or
#             lttng create; enable-event -u 'bench:*'; start; PROG N; stop;
#             count events (babeltrace2 sink.utils.counter); destroy
#   ow-*      weft record --probe-overwrite: every event is written (the ring
#             wraps), so the cost is that of the full write path
#   burst-*   default buffers, bursts of BURST events with GAP ms pauses, so
#             that weft's collector (which drains every 10 ms while a process
#             is attached) loses nothing
#   *-4t      4 threads, N4 events each; *-16M: --probe-buffer 16M
# weft runs without -q so that its summary (events, lost, recorder CPU) is
# printed; stderr is a file, so there is no live status line.
#
# Also measured once: memory of a weft-probe attachment (Shmem in
# /proc/meminfo while `weft record -p` is attached to `weft-demo spin`, with
# 64 and 4 thread slots), and the end-to-end time of attach+record+detach
# (`weft record -q -p PID --duration 1ms --syscalls exit`, with and without
# --no-probes, so the difference is the probe attach/detach; includes weft's
# own start-up), plus a syscall-level breakdown of one attach with strace.
#
# Usage: bench/probe.sh [--runs R] [--out DIR] [--n N] [--n-disabled N]
#                       [--n-threads N] [--build] [--keep] [--no-lttng-count]
#   --runs R        runs per configuration                 (default 3)
#   --n N           events per run for 1 thread            (default 20000000)
#   --n-disabled N  events per run for the disabled cost   (default 300000000)
#   --n-threads N   events per thread with 4 threads       (default 5000000)
#   --build         run cargo build --release (and --example weft-demo, -p weft-probe) first
#   --no-lttng-count  do not count lttng events with babeltrace2
# Environment: WEFT, WEFT_DEMO, WEFT_PROBE_LIB, CC, BENCH_RUNS, BENCH_OUT,
#   BURST (8000), BURSTS (25), GAP (120 ms), RUST_TARGET (cargo target dir of
#   bench/probe-rust, default /tmp/weft-bench-rust-target).
# Needs root (weft record, lttng-sessiond), gcc, cargo, liblttng-ust-dev,
# lttng-tools; babeltrace2 to count lttng events; strace for the attach
# breakdown. Outputs in OUT: results.md (also on stdout), runs.csv, logs/, bin/.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

RUNS=${BENCH_RUNS:-3}
OUT=${BENCH_OUT:-}
N1=20000000
NDIS=300000000
N4=5000000
BUILD=0
KEEP=0
LTTNG_COUNT=1
WEFT=${WEFT:-$REPO_ROOT/target/release/weft}
WEFT_DEMO=${WEFT_DEMO:-$REPO_ROOT/target/release/examples/weft-demo}
WEFT_PROBE_LIB=${WEFT_PROBE_LIB:-$REPO_ROOT/target/release/libweft_probe.a}
CC=${CC:-cc}
BURST=${BURST:-8000}
BURSTS=${BURSTS:-25}
GAP=${GAP:-120}
RUST_TARGET=${RUST_TARGET:-/tmp/weft-bench-rust-target}

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "probe.sh: $*" >&2; exit 2; }
log() { echo "[probe] $*" >&2; }

while [[ $# -gt 0 ]]; do
	case $1 in
	--runs) RUNS=${2:?}; shift ;;
	--out) OUT=${2:?}; shift ;;
	--n) N1=${2:?}; shift ;;
	--n-disabled) NDIS=${2:?}; shift ;;
	--n-threads) N4=${2:?}; shift ;;
	--build) BUILD=1 ;;
	--keep) KEEP=1 ;;
	--no-lttng-count) LTTNG_COUNT=0 ;;
	-h|--help) usage; exit 0 ;;
	*) die "unknown option '$1' (see --help)" ;;
	esac
	shift
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "runs must be a positive integer"
[[ $(id -u) == 0 ]] || die "needs root (weft record, lttng-sessiond)"

if [[ -z $OUT ]]; then OUT=$(mktemp -d /tmp/weft-probe-bench.XXXXXX); else mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd); fi
BIN=$OUT/bin LOGS=$OUT/logs TR=$OUT/traces
mkdir -p "$BIN" "$LOGS" "$TR"
CSV=$OUT/runs.csv
echo "config,run,rc,enabled,threads,events,median_ns,events_per_s,wall_s,weft_events,weft_lost,attempted,recorded,info_lost,recorder_cpu_s,out_bytes,lttng_discarded,events_in_file" >"$CSV"
log "results dir: $OUT"

# ----------------------------------------------------------------- build
if [[ $BUILD == 1 ]]; then
	(cd "$REPO_ROOT" && cargo build --release && cargo build --release --example weft-demo && cargo build --release -p weft-probe) >&2
fi
for f in "$WEFT" "$WEFT_DEMO" "$WEFT_PROBE_LIB"; do
	[[ -e $f ]] || die "$f missing: run 'cargo build --release && cargo build --release --example weft-demo && cargo build --release -p weft-probe' (or --build)"
done
W=$SCRIPT_DIR/workloads
"$CC" -O2 -Wall -I "$REPO_ROOT/crates/weft-probe/include" -o "$BIN/probe_weft" "$W/probe_weft.c" \
	"$WEFT_PROBE_LIB" -lpthread -ldl -lm -lrt -lgcc_s || die "compiling probe_weft.c failed"
(cd "$SCRIPT_DIR/probe-rust" && CARGO_TARGET_DIR=$RUST_TARGET cargo build --release -q) >&2 ||
	die "building bench/probe-rust failed"
RUST2=$RUST_TARGET/release/weft-bench-probe-rust
HAVE_LTTNG=1
if ! "$CC" -O2 -Wall -I "$W" -o "$BIN/probe_lttng" "$W/probe_lttng.c" "$W/probe_lttng_tp.c" \
	-llttng-ust -ldl -lpthread 2>"$LOGS/lttng-compile.log"; then
	HAVE_LTTNG=0; log "lttng benchmark not built (apt-get install liblttng-ust-dev): $(tail -n1 "$LOGS/lttng-compile.log")"
fi
command -v lttng >/dev/null || { HAVE_LTTNG=0; log "lttng not installed (apt-get install lttng-tools)"; }
if [[ $HAVE_LTTNG == 1 ]] && ! pgrep -x lttng-sessiond >/dev/null; then
	lttng-sessiond --daemonize --no-kernel >"$LOGS/lttng-sessiond.log" 2>&1 || true
	sleep 1
	pgrep -x lttng-sessiond >/dev/null || { HAVE_LTTNG=0; log "lttng-sessiond did not start"; }
fi
HAVE_BT2=0
command -v babeltrace2 >/dev/null && HAVE_BT2=1

# ---------------------------------------------------------------- helpers
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit
	if (NR % 2) printf "%.6f\n", v[(NR + 1) / 2]; else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
kv() { # kv KEY FILE -> value of KEY=value on the last line that has it
	sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" "$2" 2>/dev/null | tail -n1; }
now_ns() { date +%s%N; }

# weft summary: "weft: weft-probe: E events from P attached process(es), L lost, D damage reports; ..."
weft_probe_summary() { sed -n 's/^weft: weft-probe: \([0-9]*\) events* from .* \([0-9]*\) lost,.*/\1 \2/p' "$1" | tail -n1; }
weft_recorder_cpu() { sed -n 's/^weft: recorder CPU time \([0-9.]*\) s.*/\1/p' "$1" | tail -n1; }
# weft info: "weft-probe: PID p: A events attempted, R recorded, L lost" (summed over PIDs)
weft_info_probe() { awk '/^weft-probe: PID/ { for (i = 1; i <= NF; i++) {
		if ($(i+1) == "events" && $(i+2) == "attempted,") a += $i
		if ($(i+1) == "recorded,") r += $i
		if ($(i+1) == "lost" || $(i+1) == "lost,") l += $i } ; found = 1 }
	END { if (found) print a, r, l }' "$1"; }

# ------------------------------------------------------------------ runs
# A configuration is MODE-PROG[-4t][-16M]:
#   MODE  dis    the program alone
#         en     weft record (default buffers) / an lttng session
#         ow     weft record --probe-overwrite (flight recorder: the ring
#                wraps, every event is written, none is dropped for lack of
#                room; old ones are overwritten)
#         burst  like en, but BENCH_BURST=$BURST BENCH_GAP_MS=$GAP: bursts that
#                fit in the buffer, separated by pauses long enough for the
#                collector to drain them (nothing lost)
#   PROG  weft-rust (weft-demo bench), weft-rust2 (bench/probe-rust, 2 x u64),
#         weft-c, lttng
# run_one CONFIG RUN
run_one() {
	local c=$1 r=$2 tag=$1.$2
	local so=$LOGS/$tag.stdout se=$LOGS/$tag.stderr rc=0
	local out="" sess="" t=1 n=$N1 mode=${1%%-*} pat='bench:*'
	local -a cmd prog extra=() envs=()
	case $c in
	burst-*) n=$((BURST * BURSTS)); envs=(BENCH_BURST=$BURST BENCH_GAP_MS=$GAP) ;;
	*-4t*) n=$N4 ;;
	dis-*) n=$NDIS ;;
	esac
	[[ $c == *-4t* ]] && t=4
	case $c in
	*weft-rust2*) prog=("$RUST2" "$n" "$t") ;;
	*weft-rust*) prog=("$WEFT_DEMO" bench "$n" "$t"); pat='demo:*' ;;
	*weft-c*) prog=("$BIN/probe_weft" "$n" "$t") ;;
	*lttng*) prog=("$BIN/probe_lttng" "$n" "$t") ;;
	esac
	[[ $c == *-16M ]] && extra+=(--probe-buffer 16M)
	[[ $mode == ow ]] && extra+=(--probe-overwrite)
	[[ $mode != dis ]] && envs+=(BENCH_WAIT_ENABLED=3000)
	if [[ $mode == dis ]]; then
		cmd=("${prog[@]}")
	elif [[ $c == *lttng* ]]; then
		out=$TR/$tag.lttng
		rm -rf "$out"
		sess=wbench-$$-${tag//./-}
		{ lttng create "$sess" --output="$out" && lttng enable-event -u -s "$sess" 'bench:*' &&
			lttng start "$sess"; } >"$LOGS/$tag.lttng" 2>&1 || log "lttng session setup failed: $(tail -n1 "$LOGS/$tag.lttng")"
		cmd=("${prog[@]}")
	else
		out=$TR/$c.weft
		cmd=("$WEFT" record -o "$out" "${extra[@]}" -e "$pat" -- "${prog[@]}")
	fi
	log "run $r/$RUNS: $c: ${envs[*]} ${cmd[*]}"
	local t0 t1
	t0=$(now_ns)
	env "${envs[@]}" "${cmd[@]}" >"$so" 2>"$se" </dev/null || rc=$?
	t1=$(now_ns)
	local wall; wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
	local we="" wl="" att="" rec="" il="" cpu="" size="" disc="" cnt=""
	if [[ -n $sess ]]; then
		lttng stop "$sess" >>"$LOGS/$tag.lttng" 2>&1 || true
		lttng list "$sess" >"$LOGS/$tag.lttng-list" 2>&1 || true
		# lttng-tools 2.13.9 printed this count with bit 63 set in the 4-thread
		# runs here (9223372036856163979 = 2^63 + 1388171, where babeltrace2
		# counted exactly 1388171 events missing): bit 63 is masked off.
		disc=$(sed -n 's/.*[Dd]iscarded events: *\([0-9]*\).*/\1/p' "$LOGS/$tag.lttng-list" |
			python3 -c 'import sys; v = [int(x) for x in sys.stdin.read().split()]; print(sum(x & ((1 << 63) - 1) for x in v) if v else "")')
		lttng destroy "$sess" >>"$LOGS/$tag.lttng" 2>&1 || true
		size=$(du -sb "$out" | cut -f1)
		if [[ $LTTNG_COUNT == 1 && $HAVE_BT2 == 1 ]]; then
			babeltrace2 "$out" -c sink.utils.counter >"$LOGS/$tag.bt2" 2>&1 || true
			cnt=$(awk '/Event messages/ { n = $1 } END { print n }' "$LOGS/$tag.bt2" | tr -d ',')
		fi
		[[ $KEEP == 0 ]] && rm -rf "$out"
	elif [[ -n $out ]]; then
		read -r we wl < <(weft_probe_summary "$se"; echo) || true
		cpu=$(weft_recorder_cpu "$se")
		[[ -e $out ]] && size=$(stat -c %s "$out")
		if [[ -e $out ]] && "$WEFT" info "$out" >"$LOGS/$tag.info" 2>&1; then
			read -r att rec il < <(weft_info_probe "$LOGS/$tag.info"; echo) || true
			# events of the benchmark's event actually in the file ("events by name")
			cnt=$(awk -v e="${pat%:*}:tick" '$2 == e { print $1 }' "$LOGS/$tag.info")
		fi
		[[ $KEEP == 0 ]] && rm -f "$out" "$out.symcache"
	fi
	echo "$c,$r,$rc,$(kv enabled "$so"),$(kv threads "$so"),$(kv events "$so"),$(kv median_ns_per_event "$so"),$(kv events_per_sec "$so"),$wall,$we,$wl,$att,$rec,$il,$cpu,$size,$disc,$cnt" >>"$CSV"
	[[ $rc == 0 ]] || log "  $c exited with $rc: $(tail -n1 "$se")"
}

P1="weft-rust weft-rust2 weft-c"
CONFIGS=""
for m in dis en; do for p in $P1 lttng; do CONFIGS+=" $m-$p"; done; done
for p in $P1; do CONFIGS+=" ow-$p"; done
for p in weft-rust2 weft-c lttng; do CONFIGS+=" burst-$p"; done
CONFIGS+=" en-weft-rust2-16M"
for p in $P1; do CONFIGS+=" en-$p-4t en-$p-4t-16M"; done
CONFIGS+=" en-lttng-4t burst-weft-rust2-4t burst-weft-c-4t burst-lttng-4t"
if [[ $HAVE_LTTNG == 0 ]]; then CONFIGS=$(tr ' ' '\n' <<<"$CONFIGS" | grep -v lttng | paste -sd' ' -); fi
for ((r = 1; r <= RUNS; r++)); do
	for c in $CONFIGS; do run_one "$c" "$r"; done
done

# -------------------------------------------- memory and attach/detach
log "memory and attach/detach against weft-demo spin"
"$WEFT_DEMO" spin >"$LOGS/spin.stdout" 2>&1 &
SPIN=$!
trap 'kill $SPIN 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q ready "$LOGS/spin.stdout" 2>/dev/null && break; sleep 0.05; done
shmem_kb() { awk '/^Shmem:/ { print $2 }' /proc/meminfo; }
MEM_ROWS=()
for slots in 64 4; do
	s0=$(shmem_kb)
	"$WEFT" record -q -o "$TR/mem.weft" -p "$SPIN" --duration 3s --syscalls exit --probe-threads "$slots" \
		2>"$LOGS/mem-$slots.stderr" &
	wp=$!
	sleep 1.5
	s1=$(shmem_kb)
	map=$(awk '/memfd:/ { m = 1; name = $NF; next } m && /^Size:/ { sz = $2 } m && /^Rss:/ { rss = $2; m = 0; print sz, rss; exit }' "/proc/$SPIN/smaps")
	wrss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$wp/status" 2>/dev/null || echo "")
	wait "$wp" || true
	MEM_ROWS+=("$slots $((s1 - s0)) ${map:-- -} ${wrss:--}")
done
rm -f "$TR/mem.weft"

ATT_ROWS=()
for variant in probes no-probes; do
	extra=()
	[[ $variant == no-probes ]] && extra=(--no-probes)
	ts=() att=0
	for i in 1 2 3 4 5; do
		rm -f "$TR/a.weft"
		t0=$(now_ns)
		"$WEFT" record -q -o "$TR/a.weft" -p "$SPIN" --duration 1ms --syscalls exit "${extra[@]}" \
			>"$LOGS/attach-$variant-$i.stderr" 2>&1 || log "attach run $variant $i failed"
		t1=$(now_ns)
		ts+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e6 }')")
		"$WEFT" info "$TR/a.weft" >"$LOGS/attach-$variant-$i.info" 2>&1 || true
		# The attach record, not the per-thread stats ('weft-probe: PID' in weft
		# info): stats exist only for threads that wrote an event while
		# attached, and weft-demo spin may write none in a 1 ms recording.
		grep -q 'weft:probe_attach' "$LOGS/attach-$variant-$i.info" && att=$((att + 1))
	done
	ATT_ROWS+=("$variant $(printf '%s\n' "${ts[@]}" | median) $att ${ts[*]}")
done
# Time from the start of the recording to "weft-probe attached" (weft dump),
# with a recording long enough for the attach to happen.
ATT_LAT=()
for i in 1 2 3; do
	"$WEFT" record -q -o "$TR/a.weft" -p "$SPIN" --duration 300ms --syscalls exit >/dev/null 2>&1 || true
	ATT_LAT+=("$("$WEFT" dump "$TR/a.weft" --event 'weft:*' 2>/dev/null | awk '/weft-probe attached/ { printf "%.1f", $1 * 1000; exit }')")
done
# One attach under strace (seccomp-bpf: only the listed syscalls stop weft,
# none of them on a hot path), to split the end-to-end time.
STRACE_NOTE=""
if command -v strace >/dev/null; then
	strace -f --seccomp-bpf -ttt -e trace=execve,connect,memfd_create,ftruncate,fcntl,sendmsg,sendto,recvfrom,exit_group \
		-o "$LOGS/attach.strace" "$WEFT" record -q -o "$TR/a.weft" -p "$SPIN" --duration 1ms --syscalls exit \
		>/dev/null 2>&1 || true
	STRACE_NOTE=$(awk '
		$3 ~ /^execve\(/ && !t0 { t0 = $2 }
		$3 ~ /^connect\(/ && /\.sock/ && !tc { tc = $2 }
		$3 ~ /^ftruncate\(/ && !tt { tt = $2 }
		$3 ~ /^fcntl\(/ && /F_ADD_SEALS/ && !ts { ts = $2 }
		$3 ~ /^sendmsg\(/ { tsm = $2; after = 0 }
		$3 ~ /^recvfrom\(/ { if (tsm && ++after == 2 && !ta) ta = $2; tr = $2 }
		$3 ~ /^sendto\(/ { td = $2 }
		$3 ~ /^exit_group\(/ { te = $2 }
		END { if (!(t0 && tc && ta && td && te)) { print "(could not parse the strace log)"; exit }
			printf "start-up (execve -> connect to the probe socket) %.1f ms; attach (connect -> Attached reply) %.1f ms, of which creating and pre-faulting the memfd (ftruncate -> seals) %.1f ms; recording %.1f ms; detach (Detach -> reply) %.1f ms; tear-down (reply -> exit_group) %.1f ms; total %.1f ms",
				(tc - t0) * 1e3, (ta - tc) * 1e3, (ts - tt) * 1e3, (td - ta) * 1e3, (tr - td) * 1e3, (te - tr) * 1e3, (te - t0) * 1e3 }' "$LOGS/attach.strace")
fi
kill "$SPIN" 2>/dev/null || true
wait "$SPIN" 2>/dev/null || true
trap - EXIT
rm -f "$TR/a.weft"

# ----------------------------------------------------------------- report
col() { awk -F, -v c="$1" -v f="$2" 'NR > 1 && $1 == c && $3 == 0 && $f != "" { print $f }' "$CSV"; }
med() { col "$1" "$2" | median; }
fmt() { [[ -z $1 ]] && { echo "-"; return; }; awk -v v="$1" -v p="${2:-2}" 'BEGIN { printf "%.*f", p, v }'; }
mev() { [[ -z $1 ]] && { echo "-"; return; }; awk -v v="$1" 'BEGIN { printf "%.2f M", v / 1e6 }'; }
allv() { col "$1" "$2" | paste -sd/ -; }
okruns() { echo "$(col "$1" 1 | wc -l)/$(awk -F, -v c="$1" 'NR > 1 && $1 == c' "$CSV" | wc -l)"; }
lostcol() { [[ $1 == *lttng* ]] && echo 17 || echo 11; }
# cell CONFIG -> "ns (lost x%)" for the per-event table
cell() {
	local c=$1 ns ev lost
	[[ $(awk -F, -v c="$c" 'NR > 1 && $1 == c' "$CSV" | wc -l) == 0 ]] && { echo "-"; return; }
	ns=$(med "$c" 7)
	[[ -z $ns ]] && { echo "failed ($(okruns "$c") ok)"; return; }
	ev=$(med "$c" 6); lost=$(med "$c" "$(lostcol "$c")")
	if [[ $c == dis-* || -z $lost ]]; then fmt "$ns" 2
	else awk -v n="$ns" -v l="$lost" -v e="$ev" 'BEGIN { printf "%.2f (lost %.1f%%)", n, 100 * l / e }'; fi
}
ratio() { local a b; a=$(med "$1" 7) b=$(med "$2" 7)
	[[ -n $a && -n $b ]] && awk -v x="$a" -v y="$b" 'BEGIN { printf "%.1fx", x / y }' || echo -; }

REPORT=$OUT/results.md
{
	echo "# weft-probe vs lttng-ust"
	echo
	echo "- date: $(date -u '+%Y-%m-%d %H:%M:%SZ'), kernel $(uname -r), $(nproc) CPUs," \
		"$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
	echo "- $("$WEFT" --version 2>/dev/null); lttng-ust $(dpkg-query -W -f '${Version}' liblttng-ust-dev 2>/dev/null || echo '?');" \
		"$(lttng --version 2>/dev/null | head -n1 || echo 'lttng: ?'); cc: $("$CC" --version | head -n1)"
	echo "- runs: $RUNS per configuration, interleaved; each cell is the median over runs (every run in runs.csv)."
	echo "- events per run: 1 thread $N1, disabled $NDIS, bursts $BURSTS x $BURST (pause $GAP ms), 4 threads $N4 per thread."
	echo
	echo "## Per-event cost, 1 thread: median ns/event (share of events lost)"
	echo
	echo "| mode | weft-demo (u64+u32) | weft Rust (2 x u64) | weft C (2 x u64) | lttng-ust (2 x u64) | lttng / weft Rust | lttng / weft C |"
	echo "|---|---|---|---|---|---|---|"
	echo "| disabled | $(cell dis-weft-rust) | $(cell dis-weft-rust2) | $(cell dis-weft-c) | $(cell dis-lttng) | $(ratio dis-lttng dis-weft-rust2) | $(ratio dis-lttng dis-weft-c) |"
	echo "| enabled, continuous, default buffers | $(cell en-weft-rust) | $(cell en-weft-rust2) | $(cell en-weft-c) | $(cell en-lttng) | $(ratio en-lttng en-weft-rust2) | $(ratio en-lttng en-weft-c) |"
	echo "| enabled, continuous, weft --probe-overwrite (lttng: continuous, as above) | $(cell ow-weft-rust) | $(cell ow-weft-rust2) | $(cell ow-weft-c) | $(cell en-lttng) | $(ratio en-lttng ow-weft-rust2) | $(ratio en-lttng ow-weft-c) |"
	echo "| enabled, bursts of $BURST + $GAP ms pause, default buffers | - | $(cell burst-weft-rust2) | $(cell burst-weft-c) | $(cell burst-lttng) | $(ratio burst-lttng burst-weft-rust2) | $(ratio burst-lttng burst-weft-c) |"
	echo
	echo "lost: weft's summary ('N lost'; in overwrite mode these are overwritten events); lttng: 'Discarded events' of lttng list."
	echo "Enabled flags seen by the programs before/after the loop, per run:"
	for c in en-weft-rust en-weft-rust2 en-weft-c en-lttng ow-weft-rust ow-weft-rust2 ow-weft-c burst-weft-rust2 burst-weft-c burst-lttng; do
		echo "$c $(allv "$c" 4);"
	done | paste -sd' ' -
	echo
	echo "## Throughput and loss"
	echo
	echo "| config | runs ok | threads | events emitted | median ns/event | aggregate events/s | recorded | lost | lost % | recorded events/s | recorder CPU s | trace size | lost per run |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
	for c in en-weft-rust en-weft-rust2 en-weft-c en-lttng en-weft-rust2-16M burst-weft-rust2 burst-weft-c burst-lttng \
		en-weft-rust-4t en-weft-rust2-4t en-weft-c-4t en-lttng-4t en-weft-rust-4t-16M en-weft-rust2-4t-16M en-weft-c-4t-16M \
		burst-weft-rust2-4t burst-weft-c-4t burst-lttng-4t; do
		[[ $(awk -F, -v c="$c" 'NR > 1 && $1 == c' "$CSV" | wc -l) == 0 ]] && continue
		ev=$(med "$c" 6) ns=$(med "$c" 7) eps=$(med "$c" 8)
		if [[ $c == *lttng* ]]; then
			lost=$(med "$c" 17); rec=$(med "$c" 18); runs_lost=$(allv "$c" 17); cpu=""
		else
			lost=$(med "$c" 11); rec=$(med "$c" 13); runs_lost=$(allv "$c" 11); cpu=$(med "$c" 15)
			infile=$(med "$c" 18)
			[[ -n $rec && -n $infile && ${rec%.*} != "${infile%.*}" ]] && rec="$rec (in file: $(fmt "$infile" 0))"
		fi
		pct=$([[ -n $lost && -n $ev ]] && awk -v l="$lost" -v e="$ev" 'BEGIN { printf "%.2f%%", 100 * l / e }' || echo -)
		# recorded per second of the program's loop (events emitted / aggregate events/s)
		reps=$([[ -n $rec && -n $eps && -n $ev && $c != burst-* ]] && awk -v r="${rec%% *}" -v e="$ev" -v s="$eps" 'BEGIN { printf "%.2f M", r / (e / s) / 1e6 }' || echo -)
		sz=$(med "$c" 16)
		sz=$([[ -n $sz ]] && awk -v b="$sz" 'BEGIN { printf "%.1f MiB", b / 1048576 }' || echo -)
		[[ $c == burst-* ]] && eps=""
		[[ $rec =~ ^[0-9.]+$ ]] && rec=$(fmt "$rec" 0)
		echo "| $c | $(okruns "$c") | $(med "$c" 5 | cut -d. -f1) | $(fmt "$ev" 0) | $(fmt "$ns" 2) | $(mev "$eps") | ${rec:--} | $(fmt "$lost" 0) | $pct | $reps | $(fmt "$cpu" 2) | $sz | $runs_lost |"
	done
	echo
	echo "weft: lost = 'N lost' of its summary line, recorded = 'recorded' of weft info (attempted = recorded + lost per PID; shown '(in file: n)' only when the count of the event under 'events by name' differs);" \
		"lttng: lost = 'Discarded events' of lttng list after stop, recorded = events counted by babeltrace2 (sink.utils.counter)." \
		"A run that failed (non-zero exit) is left out of the medians; see runs.csv and logs/CONFIG.RUN.stderr."
	failed=$(awk -F, 'NR > 1 && $3 != 0 { print $1 "." $2 " (exit " $3 ")" }' "$CSV" | paste -sd, -)
	[[ -n $failed ]] && echo && echo "Failed runs: $failed. Last stderr lines:" && echo && for f in $(awk -F, 'NR > 1 && $3 != 0 { print $1 "." $2 }' "$CSV"); do
		echo "- $f: \`$(grep -v '^impl=\|^enabled=' "$LOGS/$f.stderr" | grep -i 'error' | tail -n1)\`"
	done
	echo
	echo "## Memory of a weft-probe attachment (weft-demo spin, one writing thread)"
	echo
	echo "| --probe-threads | Shmem increase while attached | memfd mapping in the process: Size / Rss | weft record RSS |"
	echo "|---|---|---|---|"
	for row in "${MEM_ROWS[@]}"; do
		read -r slots d sz rss wr <<<"$row"
		echo "| $slots | $d KiB | $sz KiB / $rss KiB | $wr KiB |"
	done
	echo
	echo "Geometry (docs/probe-buffers.md): per thread slot 4 KiB + --probe-buffer (512 KiB) = 516 KiB; per process 4 KiB +" \
		"slots x slot, allocated and pre-faulted (MAP_POPULATE) at attach for all slots, whether or not the threads exist."
	echo
	echo "## Attach + record 1 ms + detach, end to end (includes weft's own start-up)"
	echo
	echo "| weft record -q -p PID --duration 1ms --syscalls exit ... | median ms | runs with a weft:probe_attach record | all runs ms |"
	echo "|---|---|---|---|"
	for row in "${ATT_ROWS[@]}"; do
		read -r v m att rest <<<"$row"
		echo "| $v | $(fmt "$m" 2) | $att/5 | $rest |"
	done
	echo
	echo "Time from the start of a 300 ms recording to the 'weft-probe attached' record (weft dump), 3 runs: ${ATT_LAT[*]} ms."
	[[ -n $STRACE_NOTE ]] && { echo; echo "One run under strace -f --seccomp-bpf (execve, connect, memfd_create, ftruncate, fcntl, sendmsg, sendto, recvfrom, exit_group): $STRACE_NOTE."; }
} >"$REPORT"
cat "$REPORT"
log "results: $REPORT"
