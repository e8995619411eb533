#!/usr/bin/env bash
# bench/probe-ab.sh - what a change to the write path costs: the per-event
# write cost of the working tree against a base revision, Rust and C API,
# in weft record --probe-overwrite (every event takes the full write path),
# interleaved run by run so that both see the same machine.
#
# Usage: bench/probe-ab.sh [--base REV] [--runs R] [--n N] [--burst] [--out DIR]
#   --base REV  revision to compare with (default HEAD: the uncommitted change)
#   --runs R    runs of each program (default 5)
#   --n N       events per run (default 20000000; 200000 with --burst)
#   --burst     bursts of 8000 events with 120 ms pauses, in discard mode
#               (probe-keep.sh's burst-* configurations): the cost that
#               includes opening each sub-buffer, on memory the collector
#               read last; the median of the writer's CPU time is
#               compared instead of the wall-clock one
# Builds, for each side, libweft_probe.a and bench/workloads/probe_weft.c
# (C API), and bench/probe-rust (Rust API); both are recorded by the
# working tree's target/release/weft. Prints one line per run and the
# medians; the difference is new - base in ns/event.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
BASE=HEAD
RUNS=5
N=
BURST=
OUT=$(mktemp -d /tmp/weft-probe-ab.XXXXXX)
while [[ $# -gt 0 ]]; do
	case $1 in
	--base) BASE=$2; shift 2 ;;
	--runs) RUNS=$2; shift 2 ;;
	--n) N=$2; shift 2 ;;
	--burst) BURST=1; shift ;;
	--out) OUT=$2; mkdir -p "$OUT"; shift 2 ;;
	-h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "probe-ab.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done
if [[ -n $BURST ]]; then
	N=${N:-200000}
	MODE=(env BENCH_BURST=8000 BENCH_GAP_MS=120)
	OVERWRITE=()
	FIELD=median_cpu_ns_per_event
else
	N=${N:-20000000}
	MODE=(env)
	OVERWRITE=(--probe-overwrite)
	FIELD=median_ns_per_event
fi
[[ $(id -u) == 0 ]] || { echo "probe-ab.sh: needs root (weft record)" >&2; exit 2; }

log() { echo "[probe-ab] $*" >&2; }
WEFT=$REPO/target/release/weft
log "building weft (release)"
(cd "$REPO" && cargo build -q --release -p weft-cli)

# build SIDE SRC: libweft_probe.a, the C and the Rust program of one side.
build() {
	local side=$1 src=$2
	log "building the $side side from $src"
	(cd "$src" && cargo build -q --release -p weft-probe --target-dir "$OUT/$side-target")
	cc -O2 -I "$src/crates/weft-probe/include" -o "$OUT/c-$side" "$src/bench/workloads/probe_weft.c" \
		"$OUT/$side-target/release/libweft_probe.a" -lpthread -ldl -lm -lrt -lgcc_s
	(cd "$src/bench/probe-rust" && cargo build -q --release --target-dir "$OUT/$side-rust-target")
	cp "$OUT/$side-rust-target/release/weft-bench-probe-rust" "$OUT/rust-$side"
}
rm -rf "$OUT/base-src"
git -C "$REPO" worktree add -f -q --detach "$OUT/base-src" "$BASE"
trap 'git -C "$REPO" worktree remove --force "$OUT/base-src" 2>/dev/null || true' EXIT
build base "$OUT/base-src"
build new "$REPO"

sync
echo 3 >/proc/sys/vm/drop_caches
: >"$OUT/runs.txt"
for r in $(seq 1 "$RUNS"); do
	for prog in c-base c-new rust-base rust-new; do
		ns=$(BENCH_WAIT_ENABLED=3000 "${MODE[@]}" "$WEFT" record -q --force -o "$OUT/t.weft" "${OVERWRITE[@]}" \
			-e 'bench:*' -- "$OUT/$prog" "$N" 2>/dev/null | sed -n "s/.* $FIELD=\([0-9.]*\).*/\1/p") || ns=""
		echo "$r $prog ${ns:-failed}" | tee -a "$OUT/runs.txt"
	done
done
rm -f "$OUT/t.weft"
python3 - "$OUT/runs.txt" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    _, prog, ns = line.split()
    if ns != "failed":
        runs.setdefault(prog, []).append(float(ns))
med = {p: statistics.median(v) for p, v in runs.items()}
for api in ("c", "rust"):
    b, n = med.get(f"{api}-base"), med.get(f"{api}-new")
    if b and n:
        print(f"{api:4} base {b:6.2f} ns  new {n:6.2f} ns  new - base {n - b:+.2f} ns ({n / b:.3f}x)")
PY
log "runs in $OUT/runs.txt"
