#!/usr/bin/env bash
# Builds the libFuzzer harness with ASan+UBSan and fuzzes the header parser.
#   fuzz/run.sh                 # 60 s
#   fuzz/run.sh -runs=10000000  # a fixed number of executions
# Extra arguments go to libFuzzer.  New interesting inputs land in a scratch
# corpus, not in the committed seeds.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$here/../src/SharedArray"
out="${FUZZ_OUT:-$(mktemp -d)}"
mkdir -p "$out"
cc="${CLANG:-clang}"

# sa_config.h (what the C may use on this system) comes from meson.build's
# feature checks: a Python-free configure of the tree (needs meson).
if [ ! -f "$out/cfg/sa_config.h" ]; then
    CC="$cc" meson setup "$out/cfg" "$here/.." -Dcore_only=true >"$out/meson.log" 2>&1 || {
        echo "fuzz/run.sh: meson setup failed; see $out/meson.log" >&2
        exit 1
    }
fi
"$cc" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -I"$src" -I"$out/cfg" "$here/fuzz_header.c" "$src/header.c" "$src/legacy.c" \
    "$src/names.c" -o "$out/fuzz_header"
mkdir -p "$out/corpus"
if [ $# -eq 0 ]; then
    set -- -max_total_time=60
fi
"$out/fuzz_header" "$out/corpus" "$here/corpus" -max_len=8192 -print_final_stats=1 "$@"
