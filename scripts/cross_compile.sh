#!/usr/bin/env bash
# Cross-compiles the C files of SharedArray that do not need Python.h for
# other systems with zig (the `ziglang` package on PyPI ships zig, clang and
# libc headers for macOS, FreeBSD and every glibc back to 2.0), and reports
# per target and file whether `-c -Wall -Wextra -Werror -std=c11` passes,
# with every error (file:line: message).
#
#   scripts/cross_compile.sh [options] [TARGET...]
#
# Targets (zig triples; default: all of these):
#   x86_64-macos.10.13   aarch64-macos.11.0   (the oldest macOS that
#                        NumPy 2 wheels and Apple silicon support)
#   x86_64-freebsd       aarch64-freebsd      (zig's default: FreeBSD 14)
#   x86_64-linux-gnu.2.17                     (manylinux2014's glibc)
#   x86_64-linux-gnu.2.28                     (manylinux_2_28's glibc)
#   x86_64-linux-musl                         (musllinux)
#
# Options:
#   --src DIR        the source tree (default: this script's repository)
#   --zig-venv DIR   a venv that has ziglang already; default: a throwaway
#                    venv in the work directory, with $ZIGLANG_SPEC
#                    (default ziglang==0.17.1) installed from PyPI
#   --require LIST   comma-separated targets that must pass: exit 1 if one
#                    of them does not (others are only reported)
#   --strict         exit 1 if any target/file fails
#   --keep           keep the work directory (logs of every compile)
#
# Each target first gets its own sa_config.h from meson.build's feature
# checks (meson setup -Dcore_only=true with zig as the cross compiler), so
# the C is compiled exactly as a build on that system would configure it.
#
# A file that stops at a missing header (`fatal error: 'sys/vfs.h' file not
# found`) hides the rest of its errors, so such a file is compiled a second
# time with an empty stand-in for each missing header: the errors found only
# then are listed as "behind the missing headers".  That second pass is for
# the report only; pass/fail is the first, real compile.
#
# The report ends with a grep of every C file (those that need Python.h
# too) for constructs that are Linux-only at compile time or at run time
# (abstract sockets, /proc, /dev/shm, statfs magic numbers...).
#
# Exit: 0 (report mode), 1 with --strict/--require when something required
# failed, 2 when zig could not be had.  About 15 s with ziglang cached by
# pip, 25 s from PyPI.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
src="$here"
zig_venv=""
require=""
strict=0
keep=0
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --src) src="$(cd "$2" && pwd)"; shift 2 ;;
        --zig-venv) zig_venv="$2"; shift 2 ;;
        --require) require="$2"; shift 2 ;;
        --strict) strict=1; shift ;;
        --keep) keep=1; shift ;;
        -h|--help) sed -n '2,40p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "cross_compile: unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done
if [ ${#targets[@]} -eq 0 ]; then
    targets=(x86_64-macos.10.13 aarch64-macos.11.0 x86_64-freebsd
             aarch64-freebsd x86_64-linux-gnu.2.17 x86_64-linux-gnu.2.28
             x86_64-linux-musl)
fi

start=$(date +%s)
work="$(mktemp -d "${TMPDIR:-/tmp}/sa-cross.XXXXXX")"
cleanup() {
    if [ "$keep" = 1 ]; then echo "cross_compile: logs kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

if [ -z "$zig_venv" ]; then
    zig_venv="$work/zig-venv"
    python3 -m venv "$zig_venv"
    "$zig_venv/bin/python" -m pip install -q --disable-pip-version-check \
        "${ZIGLANG_SPEC:-ziglang==0.17.1}" || {
        echo "cross_compile: could not install ${ZIGLANG_SPEC:-ziglang==0.17.1}" >&2
        exit 2
    }
fi
zig=("$zig_venv/bin/python" -m ziglang)
"${zig[@]}" version >/dev/null 2>&1 || {
    echo "cross_compile: no ziglang in $zig_venv" >&2
    exit 2
}
# zig's caches in the work directory, not in ~/.cache.
export ZIG_GLOBAL_CACHE_DIR="$work/zig-cache" ZIG_LOCAL_CACHE_DIR="$work/zig-cache"

srcdir="$src/src/SharedArray"
cd "$srcdir"

# needs_python FILE: does FILE include Python.h / numpy / sharedarray.h,
# directly or through a local header?
needs_python() {
    local f="$1" inc seen=" "
    local queue=("$f")
    while [ ${#queue[@]} -gt 0 ]; do
        f="${queue[0]}"
        queue=("${queue[@]:1}")
        case "$seen" in *" $f "*) continue ;; esac
        seen="$seen$f "
        if grep -qE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"](Python\.h|numpy/|sharedarray\.h)' "$f"; then
            return 0
        fi
        while read -r inc; do
            [ -f "$inc" ] && queue+=("$inc")
        done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
    done
    return 1
}

files=()
skipped=()
for f in *.c; do
    if needs_python "$f"; then skipped+=("$f"); else files+=("$f"); fi
done

flags=(-c -Wall -Wextra -Werror -std=c11 -fno-color-diagnostics)
zpy="$zig_venv/bin/python"
"$zpy" -m mesonbuild.mesonmain --version >/dev/null 2>&1 ||
    "$zpy" -m pip install -q --disable-pip-version-check meson ninja

# configure TARGET: meson.build's feature checks for TARGET, with zig as
# the cross compiler; sa_config.h lands in $work/cfg-TARGET.  0 if done.
configure() {
    local t="$1" system cpu
    case "$t" in
        *macos*) system=darwin ;;
        *freebsd*) system=freebsd ;;
        *) system=linux ;;
    esac
    cpu="${t%%-*}"
    cat >"$work/cross-$t.ini" <<EOF
[binaries]
c = ['$zpy', '-m', 'ziglang', 'cc', '-target', '$t']
ar = ['$zpy', '-m', 'ziglang', 'ar']
[host_machine]
system = '$system'
cpu_family = '$cpu'
cpu = '$cpu'
endian = 'little'
EOF
    "$zpy" -m mesonbuild.mesonmain setup --cross-file "$work/cross-$t.ini" \
        -Dcore_only=true "$work/cfg-$t" "$src" >"$work/$t.meson.log" 2>&1
}
diag_re='^[^ :]+\.[ch]:[0-9]+:[0-9]+: (fatal error|error|warning):'

# compile TARGET FILE LOG [EXTRA...]: 0 if it compiled.
compile() {
    local t="$1" f="$2" log="$3"
    shift 3
    "${zig[@]}" cc -target "$t" "${flags[@]}" "$@" -o "$work/out.o" "$f" \
        >"$log" 2>&1
}

declare -A result
fails=0
required_fail=0
report="$work/report.txt"
: >"$report"
for t in "${targets[@]}"; do
    if ! configure "$t"; then
        for f in "${files[@]}"; do result["$t|$f"]=FAIL; done
        fails=$((fails + ${#files[@]}))
        case ",$require," in *",$t,"*) required_fail=1 ;; esac
        {
            echo "### $t  meson setup (feature checks) failed:"
            tail -n 15 "$work/$t.meson.log" | sed 's/^/    /'
        } >>"$report"
        continue
    fi
    for f in "${files[@]}"; do
        log="$work/$t.$f.log"
        if compile "$t" "$f" "$log" -I "$work/cfg-$t"; then
            result["$t|$f"]=pass
            continue
        fi
        result["$t|$f"]=FAIL
        fails=$((fails + 1))
        case ",$require," in *",$t,"*) required_fail=1 ;; esac
        {
            echo "### $t  $f"
            grep -E "$diag_re" "$log" | sed 's/^/    /' || sed 's/^/    /' "$log"
        } >>"$report"
        # Behind missing headers: stub each one, compile again, up to 8 times.
        if grep -q "fatal error: '.*' file not found" "$log"; then
            stubs="$work/stubs-$t-$f"
            deep="$log.deep"
            mkdir -p "$stubs"
            missing=""
            last="$log"
            for _ in 1 2 3 4 5 6 7 8; do
                h="$(sed -n "s/.*fatal error: '\(.*\)' file not found.*/\1/p" "$last" | head -n 1)"
                [ -n "$h" ] || break
                mkdir -p "$stubs/$(dirname "$h")"
                : >"$stubs/$h"
                missing="$missing <$h>"
                last="$deep"
                compile "$t" "$f" "$deep" -I "$work/cfg-$t" -ferror-limit=0 -idirafter "$stubs" && break
            done
            echo "    behind the missing headers$missing (each replaced by an empty file):" >>"$report"
            grep -E "$diag_re" "$deep" | grep -v "fatal error: '.*' file not found" \
                | sed 's/^/      /' >>"$report" || true
        fi
    done
done
[ "$strict" = 1 ] && [ "$fails" -gt 0 ] && required_fail=1

zigver="$("${zig[@]}" version)"
echo "cross_compile: zig $zigver, sources $srcdir"
echo "cross_compile: flags: ${flags[*]}"
[ ${#skipped[@]} -gt 0 ] && echo "cross_compile: not compiled (need Python.h): ${skipped[*]}"
echo
printf '| target |'; for f in "${files[@]}"; do printf ' %s |' "$f"; done; echo
printf '|---|'; for _ in "${files[@]}"; do printf '%s' '---|'; done; echo
for t in "${targets[@]}"; do
    printf '| %s |' "$t"
    for f in "${files[@]}"; do printf ' %s |' "${result["$t|$f"]}"; done
    echo
done
echo
if [ -s "$report" ]; then
    echo "Errors (first, real compile; then what was behind missing headers):"
    cat "$report"
    echo
fi

echo "Linux-only constructs in $srcdir (grep; compile-time and run-time):"
grep -nE 'O_TMPFILE|AT_EMPTY_PATH|\bstatx\b|STATX_|\bfallocate\b|MADV_POPULATE|MADV_HUGEPAGE|SO_PEERCRED|struct ucred|SOCK_CLOEXEC|SOCK_NONBLOCK|sys/vfs\.h|sys/sysmacros\.h|\bmemmem\b|/proc/|/dev/shm|TMPFS_MAGIC|HUGETLBFS_MAGIC|\bf_type\b|st_mtim\b|sun_path *\+ *1|SEEK_HOLE|mkostemp|posix_fallocate|\bmakedev\b' \
    ./*.c ./*.h | sed 's|^\./|    |' | grep -vE '^    [^:]+:[0-9]+:[[:space:]]*(/?\*|//)' || true
echo
echo "cross_compile: $fails failing target/file pair(s) of $(( ${#targets[@]} * ${#files[@]} )), $(( $(date +%s) - start )) s"
exit "$required_fail"
