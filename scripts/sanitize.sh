#!/usr/bin/env bash
# Runs the test suite against a sanitized build of the C extension.
#
#   scripts/sanitize.sh asan [PYTEST ARGS...]
#       Builds SharedArray with AddressSanitizer + UndefinedBehaviorSanitizer
#       (meson -Db_sanitize=address,undefined -Db_lundef=false) into its own
#       virtual environment, then runs the whole suite (or PYTEST ARGS) with
#       gcc's libasan/libubsan preloaded into Python and every child it
#       starts.  Fails if pytest fails or if any sanitizer wrote a report.
#       About 2 minutes on 2 cores, plus ~40 s to build the first time.
#
#   scripts/sanitize.sh valgrind [PYTEST ARGS...]
#       Builds SharedArray unoptimised with debug info into its own virtual
#       environment and runs a subset of the suite (the in-process tests;
#       see VALGRIND_TESTS below) under valgrind memcheck with
#       PYTHONMALLOC=malloc.  CPython and NumPy have known, harmless memcheck
#       noise, so errors are not counted blindly: an error or definite leak
#       fails the run only if one of the top frames of one of its stacks
#       (error site, allocation, free, origin) is in our extension
#       (_core*.so, one of its source files, an sa_* function).  About 8.5 minutes for the
#       default subset on 2 cores; pass test files or -k to run less, e.g.
#           scripts/sanitize.sh valgrind tests/test_attach.py -k threads
#
# Environment:
#   SANITIZE_DIR  where the venvs, build dirs and logs go
#                 (default ${TMPDIR:-/tmp}/sharedarray-sanitize)
#   PYTHON        the interpreter to build the venvs from (default python3)
#   CC            the compiler (default gcc; its libasan/libubsan are used)
#   SANITIZE_BACKEND  linux or posix: meson's os_backend for the asan build
#                 (default: the platform's)
#
# Everything lives under SANITIZE_DIR; nothing is installed elsewhere.  The
# venvs are reused between runs (the build is incremental).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
work="${SANITIZE_DIR:-${TMPDIR:-/tmp}/sharedarray-sanitize}"
python="${PYTHON:-python3}"
cc="${CC:-gcc}"

usage() {
    sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

[ $# -ge 1 ] || usage
mode="$1"
shift
os_backend="${SANITIZE_BACKEND:-}"

# make_venv NAME SETUP-ARG... : a venv with SharedArray built by meson with
# the given setup arguments, plus the test dependencies.
make_venv() {
    local name="$1"
    shift
    venv="$work/$name-venv"
    local build="$work/$name-build"
    mkdir -p "$work"
    if [ ! -x "$venv/bin/python" ]; then
        "$python" -m venv "$venv"
        "$venv/bin/python" -m pip install -q --upgrade pip
    fi
    "$venv/bin/python" -m pip install -q meson-python meson ninja \
        'numpy>=2.0' pytest hypothesis mypy 'dask[array]>=2024.8' \
        'distributed>=2024.8'
    local args=()
    for a in "$@"; do
        args+=("-Csetup-args=$a")
    done
    CC="$cc" "$venv/bin/python" -m pip install -q --no-build-isolation \
        --no-deps --force-reinstall "-Cbuild-dir=$build" "${args[@]}" "$root"
    # The tests must import this build, not the source tree.  (find_spec:
    # importing a sanitized _core needs the runtime preloaded.)
    local where
    where="$(cd "$root/tests" && "$venv/bin/python" -c \
        'import importlib.util as u; print(u.find_spec("SharedArray").origin)')"
    case "$where" in
        "$venv"/*) echo "sanitize: testing $where" ;;
        *) echo "sanitize: wrong SharedArray imported: $where" >&2; exit 1 ;;
    esac
}

run_asan() {
    local backend=()
    [ -n "$os_backend" ] && backend=("-Dos_backend=$os_backend")
    make_venv "asan${os_backend:+-$os_backend}" \
        -Db_sanitize=address,undefined -Db_lundef=false \
        -Dbuildtype=debugoptimized "${backend[@]}"
    local libasan libubsan logs
    libasan="$("$cc" -print-file-name=libasan.so)"
    libubsan="$("$cc" -print-file-name=libubsan.so)"
    for lib in "$libasan" "$libubsan"; do
        [ -e "$lib" ] || { echo "sanitize: $lib not found" >&2; exit 1; }
    done
    logs="$work/asan-logs"
    rm -rf "$logs"
    mkdir -p "$logs"
    local start rc=0
    start=$(date +%s)
    (
        cd "$root"
        # detect_leaks=0: CPython does not free everything at exit.
        # log_path: reports from children (workers, subprocess tests) are
        # caught too, even when the child's failure is the expected outcome.
        # ASan intercepts mlock/munlock and turns them into no-ops, so the
        # two tests that look for "Locked:" in smaps cannot pass under it.
        # At vm.max_map_count ASan's own allocator cannot map its regions
        # and aborts the process ("Failed to mmap") before our code runs.
        LD_PRELOAD="$libasan $libubsan" \
        ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:log_path=$logs/asan" \
        UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$logs/ubsan" \
        "$venv/bin/python" -m pytest tests -q -p no:cacheprovider \
            --deselect tests/test_mapping.py::test_mlock_munlock \
            --deselect tests/test_mapping.py::test_mlock_read_only_mapping \
            --deselect tests/test_faults.py::test_out_of_mappings_is_a_clean_enomem \
            "$@"
    ) || rc=$?
    echo "sanitize: asan run took $(( $(date +%s) - start )) s, pytest exit $rc"
    if compgen -G "$logs/*" >/dev/null; then
        echo "sanitize: sanitizer reports:" >&2
        for f in "$logs"/*; do
            echo "==== $f" >&2
            cat "$f" >&2
        done
        exit 1
    fi
    echo "sanitize: no ASan/UBSan report"
    return "$rc"
}

# The in-process tests: children started by the others would not run under
# valgrind anyway, and the timing-based ones would only be slow.
VALGRIND_TESTS=(
    tests/test_create.py tests/test_attach.py tests/test_delete.py
    tests/test_list.py tests/test_mapping.py tests/test_format.py
    tests/test_from_array.py tests/test_info.py tests/test_legacy.py
    tests/test_errors.py tests/test_security.py tests/test_properties.py
    tests/test_soak.py
)

run_valgrind() {
    command -v valgrind >/dev/null || {
        echo "sanitize: valgrind is not installed (apt-get install valgrind)" >&2
        exit 1
    }
    make_venv valgrind -Dbuildtype=debug
    local logs start rc=0
    logs="$work/valgrind-logs"
    rm -rf "$logs"
    mkdir -p "$logs"
    if [ $# -eq 0 ]; then
        set -- "${VALGRIND_TESTS[@]}" -k "not interpreter_shutdown"
    fi
    start=$(date +%s)
    (
        cd "$root"
        # Smaller counts: the loops are 20-50x slower under memcheck, and
        # what they check (no growth) does not need 100,000 cycles.
        SHAREDARRAY_SOAK_CYCLES="${SHAREDARRAY_SOAK_CYCLES:-3000}" \
        SHAREDARRAY_SOAK_ERROR_CYCLES="${SHAREDARRAY_SOAK_ERROR_CYCLES:-300}" \
        SHAREDARRAY_SOAK_VIEW_CYCLES="${SHAREDARRAY_SOAK_VIEW_CYCLES:-300}" \
        SHAREDARRAY_PROPERTY_EXAMPLES="${SHAREDARRAY_PROPERTY_EXAMPLES:-30}" \
        PYTHONMALLOC=malloc \
        valgrind --tool=memcheck --error-exitcode=0 --num-callers=50 \
            --track-origins=yes \
            --leak-check=full --show-leak-kinds=definite \
            --errors-for-leak-kinds=definite \
            --log-file="$logs/memcheck.%p" \
            "$venv/bin/python" -m pytest -q -p no:cacheprovider \
            -p no:faulthandler "$@"
    ) || rc=$?
    echo "sanitize: valgrind run took $(( $(date +%s) - start )) s, pytest exit $rc"
    # Each error is a block of "==PID== " lines ended by an empty one: the
    # error's stack, then the stacks of where the memory was allocated,
    # freed, or (--track-origins) made uninitialised.  An error is ours if
    # one of the top frames of any of those stacks is in our extension.
    # (Deeper frames do not count: our C calls back into Python, and the
    # known CPython/NumPy/glibc reports below such a call are not ours.)
    "$python" - "$logs" <<'EOF'
import glob, re, sys
# Frames in our extension: its .so (no debug info), one of its source files
# with a line number, or one of its functions (all sa_*).
ours = re.compile(r"_core\.cpython[^ )]*\.so|"
                  r"\b(?:_module|args|names|header|legacy|descr|segment|mapping|"
                  r"create|attach|delete|list|info)\.c:\d+|\bsa_[a-z_]+\b")
frame = re.compile(r"^\s+(at|by) 0x")
TOP = 4
total = ours_count = 0
summary = []
for path in sorted(glob.glob(sys.argv[1] + "/memcheck.*")):
    text = open(path, errors="replace").read()
    blocks, cur = [], []
    for line in text.splitlines():
        body = re.sub(r"^==\d+== ?", "", line)
        if body.strip():
            cur.append(body)
        elif cur:
            blocks.append(cur)
            cur = []
    if cur:
        blocks.append(cur)
    for b in blocks:
        head = b[0]
        summary += [f"{path.rsplit('.', 1)[-1]}: {ln.strip()}"
                    for ln in b if "ERROR SUMMARY" in ln]
        if not (head.startswith(("Invalid", "Conditional", "Use of uninit",
                                 "Syscall param", "Mismatched", "Source and destination",
                                 "Argument")) or "definitely lost" in head):
            continue
        total += 1
        top, depth = [], 0
        for ln in b[1:]:
            if frame.match(ln):
                depth += 1
                if depth <= TOP:
                    top.append(ln)
            else:
                depth = 0
        if any(ours.search(ln) for ln in top):
            ours_count += 1
            print("\n".join(b), "\n", file=sys.stderr)
print(f"sanitize: memcheck error records: {total} in all, "
      f"{ours_count} in SharedArray's extension")
for s in summary:
    print("sanitize:   pid", s)
sys.exit(1 if ours_count else 0)
EOF
    return "$rc"
}

case "$mode" in
    asan) run_asan "$@" ;;
    valgrind) run_valgrind "$@" ;;
    *) usage ;;
esac
