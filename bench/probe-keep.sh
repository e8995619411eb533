#!/usr/bin/env bash
# bench/probe-keep.sh - how many in-process events a tracer keeps from a
# program writing flat out, and at what cost: weft-probe against lttng-ust,
# side by side in one run (the targets of issue 14).
#
# Programs: bench/probe-rust (Rust, weft_probe::emit!) and
# bench/workloads/probe_weft.c (C API) for weft, probe_lttng.c for lttng-ust
# (default channel: per-user buffers, 4 x 512 KiB sub-buffers per CPU,
# discard). Every event is bench:tick {a: u64, b: u64}.
#
# Configurations (each run R times, interleaved):
#   flat1-*   1 thread, N1 events flat out (default 10M)
#   flat4-*   4 threads on this machine's CPUs, N4 events each (default 2.5M)
#   burst-*   bursts of 8000 events with 120 ms pauses (nothing is lost: the
#             write cost without losses)
#   *-wait    weft record --probe-wait 100ms (opt-in back-pressure)
#   *-rt      weft record --realtime (the drain under SCHED_FIFO)
#   *-8m      weft record --probe-buffer 8M (a larger ring per thread)
#   dis-*     the program alone, no tracer: the disabled cost (NDIS events)
#   sweep     1 thread paced at RATE events/s (BENCH_RATE) for about 2 s
#             each, C programs, rates from --rates: the highest rate each
#             tracer keeps without loss, with its collector's CPU per
#             million events
# Columns: kept % (recorded / emitted), write cost (median ns/event of the
# program's batches, wall-clock: with more writer threads than CPUs it
# includes the time a thread waited for a CPU), write CPU (the same from
# the writing thread's CPU time), bytes on disk per kept event, collector CPU seconds
# per million kept events (weft: the recorder's own CPU time, writer
# thread and compression included; lttng: lttng-consumerd's and
# lttng-sessiond's CPU time during the run, from /proc).
#
# Usage: bench/probe-keep.sh [--runs R] [--out DIR] [--n1 N] [--n4 N]
#                            [--rates "2000000 5M 10M ..."] [--no-sweep]
#                            [--configs "flat1-rust dis-c ..."]
# Needs root, gcc, cargo, liblttng-ust-dev, lttng-tools, babeltrace2 (to
# check lttng's own count once per configuration). Builds weft first
# (cargo build --release -p weft-cli -p weft-probe). Outputs in OUT:
# results.md (also on stdout), runs.csv, logs/.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
RUNS=3 OUT="" N1=10000000 N4=2500000 SWEEP=1 NDIS=200000000
CONFIGS="dis-rust dis-c flat1-rust flat1-c flat1-lttng flat1-rust-wait flat1-c-wait flat1-rust-rt flat4-rust flat4-c flat4-lttng flat4-rust-wait flat4-rust-rt burst-rust burst-c burst-lttng"
RATES="2000000 5000000 8000000 10000000 12000000 15000000 20000000 25000000 30000000 40000000"
RUST_TARGET=${RUST_TARGET:-/tmp/weft-bench-rust-target}
CC=${CC:-cc}

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "probe-keep.sh: $*" >&2; exit 2; }
log() { echo "[keep] $*" >&2; }
while [[ $# -gt 0 ]]; do
	case $1 in
	--runs) RUNS=${2:?}; shift ;;
	--out) OUT=${2:?}; shift ;;
	--n1) N1=${2:?}; shift ;;
	--n4) N4=${2:?}; shift ;;
	--rates) RATES=${2:?}; shift ;;
	--no-sweep) SWEEP=0 ;;
	--configs) CONFIGS=${2:?}; shift ;;
	-h|--help) usage; exit 0 ;;
	*) die "unknown option '$1' (see --help)" ;;
	esac
	shift
done
# Rates in events/s; "25M" means 25000000. Checked before anything runs.
rates=""
for r in $RATES; do
	case $r in
	*[!0-9]*M | M) die "bad rate '$r' in --rates: give events/s, e.g. \"10000000 25M\"" ;;
	*M) r=$((${r%M} * 1000000)) ;;
	'' | *[!0-9]*) die "bad rate '$r' in --rates: give events/s, e.g. \"10000000 25M\"" ;;
	esac
	rates+=" $r"
done
RATES=${rates# }
[[ $(id -u) == 0 ]] || die "needs root (weft record, lttng-sessiond)"
command -v lttng >/dev/null || die "lttng-tools missing (apt-get install lttng-tools liblttng-ust-dev babeltrace2)"
if [[ -z $OUT ]]; then OUT=$(mktemp -d /tmp/weft-probe-keep.XXXXXX); else mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd); fi
BIN=$OUT/bin LOGS=$OUT/logs TR=$OUT/traces
mkdir -p "$BIN" "$LOGS" "$TR"
CSV=$OUT/runs.csv
echo "config,run,rc,threads,emitted,median_ns,rate,recorded,lost,bytes,cpu_s,write_cpu_ns" >"$CSV"
log "results in $OUT"

(cd "$REPO_ROOT" && cargo build --release -q -p weft-cli -p weft-probe) >&2 || die "cargo build failed"
WEFT=$REPO_ROOT/target/release/weft
W=$SCRIPT_DIR/workloads
"$CC" -O2 -Wall -I "$REPO_ROOT/crates/weft-probe/include" -o "$BIN/probe_weft" "$W/probe_weft.c" \
	"$REPO_ROOT/target/release/libweft_probe.a" -lpthread -ldl -lm -lrt -lgcc_s || die "compiling probe_weft.c failed"
"$CC" -O2 -Wall -I "$W" -o "$BIN/probe_lttng" "$W/probe_lttng.c" "$W/probe_lttng_tp.c" -llttng-ust -ldl -lpthread ||
	die "compiling probe_lttng.c failed (apt-get install liblttng-ust-dev)"
(cd "$SCRIPT_DIR/probe-rust" && CARGO_TARGET_DIR=$RUST_TARGET cargo build --release -q) >&2 || die "building bench/probe-rust failed"
RUST2=$RUST_TARGET/release/weft-bench-probe-rust
pgrep -x lttng-sessiond >/dev/null || lttng-sessiond --daemonize --no-kernel >"$LOGS/sessiond.log" 2>&1 || true
sleep 1
pgrep -x lttng-sessiond >/dev/null || die "lttng-sessiond did not start"

kv() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" "$2" 2>/dev/null | tail -n1; }
# CPU seconds used so far by lttng's daemons (they do lttng's collecting).
lttng_cpu() {
	local hz t=0 p
	hz=$(getconf CLK_TCK)
	for p in $(pgrep -x lttng-consumerd) $(pgrep -x lttng-sessiond); do
		t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
	done
	awk -v t="$t" -v hz="$hz" 'BEGIN { printf "%.3f", t / hz }'
}
declare -A COUNTED

# run CONFIG RUN [RATE]
run() {
	local c=$1 r=$2 rate=${3:-} tag=$1.$2 rc=0 t=1 n=$N1
	local so=$LOGS/$tag.stdout se=$LOGS/$tag.stderr
	local -a prog envs=(BENCH_WAIT_ENABLED=3000) extra=()
	case $c in
	flat4-*) t=4 n=$N4 ;;
	dis-*) n=$NDIS ;;
	burst-*) n=200000; envs+=(BENCH_BURST=8000 BENCH_GAP_MS=120) ;;
	sweep-*) n=$((rate * 2)); envs+=(BENCH_RATE="$rate"); tag=$c.$rate.$r; so=$LOGS/$tag.stdout; se=$LOGS/$tag.stderr ;;
	esac
	case $c in
	*rust*) prog=("$RUST2" "$n" "$t") ;;
	*-c*) prog=("$BIN/probe_weft" "$n" "$t") ;;
	*lttng*) prog=("$BIN/probe_lttng" "$n" "$t") ;;
	esac
	[[ $c == *-wait ]] && extra=(--probe-wait 100ms)
	[[ $c == *-rt ]] && extra=(--realtime)
	[[ $c == *-8m ]] && extra=(--probe-buffer 8M)
	local rec="" lost="" bytes="" cpu=""
	if [[ $c == dis-* ]]; then
		"${prog[@]}" >"$so" 2>"$se" </dev/null || rc=$?
	elif [[ $c == *lttng* ]]; then
		local out=$TR/$tag.lttng sess=keep-$$-${tag//./-}
		rm -rf "$out"
		{ lttng create "$sess" --output="$out" && lttng enable-event -u -s "$sess" 'bench:*' && lttng start "$sess"; } \
			>"$LOGS/$tag.lttng" 2>&1 || log "lttng session setup failed: $(tail -n1 "$LOGS/$tag.lttng")"
		local c0; c0=$(lttng_cpu)
		env "${envs[@]}" "${prog[@]}" >"$so" 2>"$se" </dev/null || rc=$?
		lttng stop "$sess" >>"$LOGS/$tag.lttng" 2>&1 || true
		cpu=$(awk -v a="$c0" -v b="$(lttng_cpu)" 'BEGIN { printf "%.3f", b - a }')
		lttng list "$sess" >"$LOGS/$tag.list" 2>&1 || true
		# Bit 63 of this count was set in some 4-thread runs (see probe.sh).
		lost=$(sed -n 's/.*[Dd]iscarded events: *\([0-9]*\).*/\1/p' "$LOGS/$tag.list" |
			python3 -c 'import sys; v = [int(x) for x in sys.stdin.read().split()]; print(sum(x & ((1 << 63) - 1) for x in v) if v else 0)')
		lttng destroy "$sess" >>"$LOGS/$tag.lttng" 2>&1 || true
		bytes=$(du -sb "$out" | cut -f1)
		rec=$(($(kv events "$so") - lost))
		# lttng's own count, checked against babeltrace2 once per configuration.
		if [[ -z ${COUNTED[$c]:-} && $c != sweep-* ]]; then
			COUNTED[$c]=1
			local bt; bt=$(babeltrace2 "$out" -c sink.utils.counter 2>/dev/null | awk '/Event messages/ { n = $1 } END { print n }' | tr -d ',')
			[[ $bt == "$rec" ]] || log "  $tag: lttng says $rec kept, babeltrace2 counted ${bt:-?}"
		fi
		rm -rf "$out"
	else
		local out=$TR/$tag.weft
		env "${envs[@]}" "$WEFT" record -o "$out" "${extra[@]}" -e 'bench:*' -- "${prog[@]}" >"$so" 2>"$se" </dev/null || rc=$?
		read -r rec lost < <(sed -n 's/^weft: weft-probe: \([0-9]*\) events* from .* \([0-9]*\) lost,.*/\1 \2/p' "$se" | tail -n1; echo) || true
		cpu=$(sed -n 's/^weft: recorder CPU time \([0-9.]*\) s.*/\1/p' "$se" | tail -n1)
		bytes=$(stat -c %s "$out" 2>/dev/null || echo "")
		rm -f "$out"
	fi
	local ns rt wc
	ns=$(kv median_ns_per_event "$so") rt=$(kv paced_rate "$so") wc=$(kv median_cpu_ns_per_event "$so")
	[[ -z $rt ]] && rt=$(kv events_per_sec "$so")
	echo "${c}${rate:+@$rate},$r,$rc,$t,$(kv events "$so"),$ns,$rt,$rec,$lost,$bytes,$cpu,$wc" >>"$CSV"
	log "$tag${rate:+ @ $rate/s}: kept ${rec:-?} of $(kv events "$so") (lost ${lost:-?}), ${ns:-paced} ns/event, cpu ${cpu:-?} s"
}

for ((r = 1; r <= RUNS; r++)); do
	for c in $CONFIGS; do run "$c" "$r"; done
done
if [[ $SWEEP == 1 ]]; then
	for rate in $RATES; do
		for c in sweep-c sweep-lttng; do run "$c" 1 "$rate"; done
	done
fi

# ----------------------------------------------------------------- report
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit
	if (NR % 2) printf "%.6f\n", v[(NR + 1) / 2]; else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# col CONFIG FIELD: the field of every successful run of CONFIG
col() { awk -F, -v c="$1" -v f="$2" 'NR > 1 && $1 == c && $3 == 0 && $f != "" { print $f }' "$CSV"; }
# per-run derived values
kept() { awk -F, -v c="$1" 'NR > 1 && $1 == c && $3 == 0 && $5 > 0 { printf "%.2f\n", 100 * $8 / $5 }' "$CSV"; }
bpe() { awk -F, -v c="$1" 'NR > 1 && $1 == c && $3 == 0 && $8 > 0 { printf "%.2f\n", $10 / $8 }' "$CSV"; }
cpm() { awk -F, -v c="$1" 'NR > 1 && $1 == c && $3 == 0 && $8 > 0 && $11 != "" { printf "%.4f\n", $11 / ($8 / 1e6) }' "$CSV"; }
m() { "$@" | median; }
all() { "$@" | paste -sd/ -; }
f() { [[ -z $1 ]] && echo - || awk -v v="$1" -v p="${2:-2}" 'BEGIN { printf "%.*f", p, v }'; }
ratio() { [[ -z $1 || -z $2 ]] && echo - || awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.1fx", a / b }'; }

REPORT=$OUT/results.md
{
	echo "# weft-probe vs lttng-ust: events kept from a program writing flat out"
	echo
	echo "- $(date -u '+%Y-%m-%d %H:%M:%SZ'), kernel $(uname -r), $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
	echo "- $("$WEFT" --version 2>/dev/null), commit $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?');" \
		"lttng-ust $(dpkg-query -W -f '${Version}' liblttng-ust-dev 2>/dev/null || echo '?'), $(lttng --version 2>/dev/null | head -n1)"
	echo "- $RUNS runs per configuration, interleaved; cells are medians, every run's value after the slash-separated list in runs.csv."
	echo
	echo "| config | threads | events emitted | kept % (median) | kept % per run | write cost ns/event | write CPU ns/event | bytes on disk per event | collector CPU s per M events |"
	echo "|---|---|---|---|---|---|---|---|---|"
	for c in $CONFIGS; do
		echo "| $c | $(m col "$c" 4 | cut -d. -f1) | $(f "$(m col "$c" 5)" 0) | $(f "$(m kept "$c")") | $(all kept "$c") | $(f "$(m col "$c" 6)") | $(f "$(m col "$c" 12)") | $(f "$(m bpe "$c")" 1) | $(f "$(m cpm "$c")" 3) |"
	done
	echo
	echo "Ratios (medians):"
	echo
	for t in flat1 flat4 burst; do
		for p in rust c; do
			echo "- $t, lttng-ust write cost / weft $p: $(ratio "$(m col "$t-lttng" 6)" "$(m col "$t-$p" 6)")" \
				"(CPU time: $(ratio "$(m col "$t-lttng" 12)" "$(m col "$t-$p" 12)"));" \
				"events kept, weft $p / lttng-ust: $(ratio "$(m kept "$t-$p")" "$(m kept "$t-lttng")")"
		done
	done
	echo "- bytes on disk per event, weft Rust / lttng-ust (1 thread): $(ratio "$(m bpe flat1-rust)" "$(m bpe flat1-lttng)")"
	if [[ $SWEEP == 1 ]]; then
		echo
		echo "## Paced sweep (1 thread, C programs, about 2 s per rate)"
		echo
		echo "| target rate | weft: rate reached | weft kept % | weft collector CPU s per M events | lttng: rate reached | lttng kept % | lttng CPU s per M events |"
		echo "|---|---|---|---|---|---|---|"
		for rate in $RATES; do
			echo "| $(f "$(awk -v r="$rate" 'BEGIN { print r / 1e6 }')" 0) M/s | $(f "$(awk -v r="$(col "sweep-c@$rate" 7)" 'BEGIN { print r / 1e6 }')" 1) M/s | $(f "$(kept "sweep-c@$rate")") | $(f "$(cpm "sweep-c@$rate")" 3) |" \
				"$(f "$(awk -v r="$(col "sweep-lttng@$rate" 7)" 'BEGIN { print r / 1e6 }')" 1) M/s | $(f "$(kept "sweep-lttng@$rate")") | $(f "$(cpm "sweep-lttng@$rate")" 3) |"
		done
		best() { awk -F, -v p="$1" 'NR > 1 && index($1, p "@") == 1 && $3 == 0 && $9 == 0 && $7 >= 0.95 * substr($1, length(p) + 2) { r = substr($1, length(p) + 2) + 0; if (r > b) b = r } END { print b + 0 }' "$CSV"; }
		bw=$(best sweep-c) bl=$(best sweep-lttng)
		echo
		echo "Highest rate kept without loss (and reached within 5 %): weft $(f "$(awk -v r="$bw" 'BEGIN { print r / 1e6 }')" 0) M/s," \
			"lttng-ust $(f "$(awk -v r="$bl" 'BEGIN { print r / 1e6 }')" 0) M/s: $(ratio "$bw" "$bl")."
	fi
} | tee "$REPORT"
