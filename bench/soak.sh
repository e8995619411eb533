#!/usr/bin/env bash
# bench/soak.sh - the long runs behind docs/reliability.md, too long for CI:
#   kills    the recorder SIGKILLed at random moments, KILLS times: every file
#            it leaves must read (weft info and weft dump succeed); the events
#            read back are summed
#   stop     a program writing an event every 20 us for STOP+10 s while the
#            recorder is SIGSTOPped for STOP s: the write times (p50, p99,
#            p99.99, max), which must stay those of a recorder that reads
#   stopkill the same with the recorder SIGKILLed instead: the program
#            carries on, and a new recorder attaches to it afterwards
# Usage: bench/soak.sh [--kills N] [--stop SECONDS] [--out DIR]
# Environment: WEFT (default target/release/weft), WEFT_DEMO (default
#   target/release/examples/weft-demo), CC.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
WEFT=${WEFT:-$REPO/target/release/weft}
DEMO=${WEFT_DEMO:-$REPO/target/release/examples/weft-demo}
KILLS=200
STOP=60
OUT=$(mktemp -d /tmp/weft-soak.XXXXXX)
while [ $# -gt 0 ]; do
	case $1 in
	--kills) KILLS=$2; shift ;;
	--stop) STOP=$2; shift ;;
	--out) OUT=$2; mkdir -p "$OUT"; shift ;;
	*) echo "usage: $0 [--kills N] [--stop SECONDS] [--out DIR]" >&2; exit 2 ;;
	esac
	shift
done
[ "$(id -u)" = 0 ] || { echo "soak: needs root (weft record)" >&2; exit 1; }
[ -x "$WEFT" ] && [ -x "$DEMO" ] || { echo "soak: build first: cargo build --release && cargo build --release --example weft-demo" >&2; exit 1; }
${CC:-cc} -O2 -o "$OUT/busy" "$REPO/crates/weft-cli/tests/programs/busy.c"
log() { echo "soak: $*" >&2; }

children() { cat /proc/"$1"/task/*/children 2>/dev/null || true; }

# --- kills
ok=0; absent=0; bad=0; events=0
for i in $(seq 1 "$KILLS"); do
	t="$OUT/k.weft"
	rm -f "$t"
	"$WEFT" record -q -o "$t" -- "$OUT/busy" 100000000 &
	pid=$!
	sleep "0.$(( (RANDOM % 580) + 20 ))"
	kids=$(children "$pid")
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	for k in $kids; do kill -9 "$k" 2>/dev/null || true; done
	if [ ! -e "$t" ]; then
		absent=$((absent + 1))
		continue
	fi
	if info=$("$WEFT" info "$t" 2>&1) && "$WEFT" dump "$t" >/dev/null 2>&1; then
		ok=$((ok + 1))
		n=$(sed -n 's/^events: *\([0-9]*\).*/\1/p' <<<"$info")
		events=$((events + ${n:-0}))
	else
		bad=$((bad + 1))
		cp "$t" "$OUT/unreadable-$i.weft"
	fi
done
echo "kills: $KILLS SIGKILLs at 20-600 ms; files read: $ok; no file yet: $absent; unreadable: $bad; events read back: $events"

# --- stop: the recorder stopped while the program writes
t="$OUT/stop.weft"
"$WEFT" record -q -o "$t" -- "$DEMO" latency "$((STOP + 10))" >"$OUT/stop.txt" &
pid=$!
sleep 3
kill -STOP "$pid"
sleep "$STOP"
kill -CONT "$pid"
wait "$pid"
echo "stop: recorder stopped ${STOP} s: $(cat "$OUT/stop.txt")"
"$WEFT" info "$t" | grep -E '^weft-probe|^lost' | sed 's/^/stop:   /'

# --- baseline: the same program, the recorder reading throughout
"$WEFT" record -q -o "$OUT/base.weft" -- "$DEMO" latency 10 >"$OUT/base.txt"
echo "base: recorder reading: $(cat "$OUT/base.txt")"

# --- stopkill: the recorder killed; the program goes on; a new one attaches
"$DEMO" latency 20 >"$OUT/kill.txt" &
prog=$!
sleep 1
"$WEFT" record -q -o "$OUT/kill1.weft" -p "$prog" --duration 30s &
rec=$!
sleep 3
kill -9 "$rec"; wait "$rec" 2>/dev/null || true
sleep 1
"$WEFT" record -q -o "$OUT/kill2.weft" -p "$prog" --duration 3s
wait "$prog"
echo "stopkill: recorder killed, program went on: $(cat "$OUT/kill.txt")"
echo "stopkill: second recorder: $("$WEFT" info "$OUT/kill2.weft" | grep -E '^weft-probe' | head -1)"
log "results in $OUT"
