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
#   flood    FLOOD instrumented programs started at once under one recorder,
#            each registering 1000 events after start-up (weft-demo late),
#            next to a program making syscalls: the recorder's peak memory
#            and CPU, how many programs were attached or listed as missed,
#            and whether the syscalls kept being recorded meanwhile
# Usage: bench/soak.sh [--kills N] [--stop SECONDS] [--flood N] [--only SECTION] [--out DIR]
# Environment: WEFT (default target/release/weft), WEFT_DEMO (default
#   target/release/examples/weft-demo), CC.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
WEFT=${WEFT:-$REPO/target/release/weft}
DEMO=${WEFT_DEMO:-$REPO/target/release/examples/weft-demo}
KILLS=200
STOP=60
FLOOD=200
ONLY=
OUT=$(mktemp -d /tmp/weft-soak.XXXXXX)
while [ $# -gt 0 ]; do
	case $1 in
	--kills) KILLS=$2; shift ;;
	--stop) STOP=$2; shift ;;
	--flood) FLOOD=$2; shift ;;
	--only) ONLY=$2; shift ;;
	--out) OUT=$2; mkdir -p "$OUT"; shift ;;
	*) echo "usage: $0 [--kills N] [--stop SECONDS] [--flood N] [--only kills|stop|stopkill|flood] [--out DIR]" >&2; exit 2 ;;
	esac
	shift
done
[ "$(id -u)" = 0 ] || { echo "soak: needs root (weft record)" >&2; exit 1; }
[ -x "$WEFT" ] && [ -x "$DEMO" ] || { echo "soak: build first: cargo build --release && cargo build --release --example weft-demo" >&2; exit 1; }
${CC:-cc} -O2 -o "$OUT/busy" "$REPO/crates/weft-cli/tests/programs/busy.c"
log() { echo "soak: $*" >&2; }

children() { cat /proc/"$1"/task/*/children 2>/dev/null || true; }
want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }

# --- kills
if want kills; then
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
fi

# --- stop: the recorder stopped while the program writes
if want stop; then
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
fi

# --- stopkill: the recorder killed; the program goes on; a new one attaches
if want stopkill; then
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
fi

# --- flood: many programs registering events at once
if want flood; then
cat >"$OUT/flood.sh" <<EOS
"$OUT/busy" 2000000 >/dev/null &
for i in \$(seq 1 $FLOOD); do "$DEMO" late 1000 </dev/null >/dev/null 2>&1 & done
wait
EOS
"$WEFT" record -o "$OUT/flood.weft" -- bash "$OUT/flood.sh" 2>"$OUT/flood.err" &
rec=$!
hwm=0
while kill -0 "$rec" 2>/dev/null; do
	h=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' /proc/"$rec"/status 2>/dev/null || true)
	[ -n "$h" ] && hwm=$h
	sleep 0.2
done
wait "$rec"
info=$("$WEFT" info "$OUT/flood.weft")
attached=$(grep -c '^weft-probe: PID [0-9]*: [0-9]* events attempted' <<<"$info" || true)
missed=$(grep -c '^weft-probe: PID [0-9]*: not recorded' <<<"$info" || true)
cpu=$(sed -n 's/^weft: recorder CPU time \([0-9.]* s\).*/\1/p' "$OUT/flood.err")
# The busy program's munmap calls, from the first to the last: a stalled
# recorder would show a gap.
gaps=$("$WEFT" dump "$OUT/flood.weft" --event munmap 2>/dev/null | awk '$0 !~ /\*\*\*/ {t=$1; if (n++ && t-p>g) g=t-p; p=t} END {printf "%.3f", g}')
echo "flood: $FLOOD programs x 1000 late events: attached $attached, listed as missed $missed, $((FLOOD - attached - missed)) neither; recorder peak RSS $((hwm / 1024)) MiB, recorder CPU $cpu; longest gap between recorded munmap calls of the busy program: $gaps s"
grep -E "weft-probe|lost|missed" "$OUT/flood.err" | tail -4 | sed 's/^/flood:   /'
fi
log "results in $OUT"
