#!/usr/bin/env bash
# Rebuilds capture.bpf.o from capture.bpf.c (clang and libbpf-dev from
# Debian). The object is committed so that `cargo build` needs no clang;
# .ci/run rebuilds it and fails when the committed one differs.
# Usage: bpf/build.sh [OUT]   (default: capture.bpf.o beside this script)
set -euo pipefail
cd "$(dirname "$0")"
out=${1:-capture.bpf.o}
arch=$(uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
# -g for BTF (maps and global functions need it); DWARF is stripped so the
# object does not depend on where the checkout lives.
clang -O2 -g -fdebug-prefix-map="$PWD"=. -target bpf -D__TARGET_ARCH_"$arch" -I/usr/include/"$(uname -m)"-linux-gnu \
    -c capture.bpf.c -o "$out.tmp"
llvm-strip -g "$out.tmp" 2>/dev/null || llvm-strip-14 -g "$out.tmp"
mv "$out.tmp" "$out"
