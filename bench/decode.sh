#!/usr/bin/env bash
# bench/decode.sh - how fast the reader decodes weft-probe events stored as
# written (Probe chunks, format 1.2) against the same events encoded as
# records (Events chunks): crates/weft-format/examples/decode_speed.rs,
# then `weft dump` of a real recording of a flat-out writer.
# Usage: bench/decode.sh [RECORDS] [ROUNDS]   (defaults 2000000 7)
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"
cargo run --release -q -p weft-format --example decode_speed -- "${1:-2000000}" "${2:-7}"
