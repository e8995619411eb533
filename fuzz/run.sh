#!/usr/bin/env bash
# Runs every fuzz target for a bounded time, starting from the committed
# seeds (fuzz/seeds/TARGET) and a scratch corpus, as CI does.
# Usage: fuzz/run.sh [SECONDS_PER_TARGET]   (default 20)
# Needs cargo-fuzz (`cargo install cargo-fuzz`); on stable Rust, the -Z
# flags it passes need RUSTC_BOOTSTRAP=1.
set -uo pipefail
cd "$(dirname "$0")"
secs=${1:-20}
export RUSTC_BOOTSTRAP=1
targets=$(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^weft-fuzz$')
for t in $targets; do
    scratch=$(mktemp -d)
    log=$(mktemp)
    echo "fuzz: $t for ${secs}s"
    cargo fuzz run "$t" "$scratch" "seeds/$t" -- \
        -max_total_time="$secs" -max_len=32768 -timeout=5 -rss_limit_mb=2048 >"$log" 2>&1
    rc=$?
    grep -E "DONE|Done [0-9]+ runs|ERROR|SUMMARY|panicked" "$log" | tail -3
    rm -rf "$scratch"
    if [ "$rc" -ne 0 ]; then
        tail -40 "$log" >&2
        echo "fuzz: $t failed (exit $rc); the input is in fuzz/artifacts/$t/" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
done
echo "fuzz: all targets ran ${secs}s without a finding"
