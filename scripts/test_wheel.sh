#!/usr/bin/env bash
# Installs the SharedArray wheel from dist/ into fresh virtual environments
# and runs the test suite against it, once per NumPy version.
#
#   scripts/test_wheel.sh [options] [-- PYTEST ARGS...]
#
# PYTEST ARGS may name tests by their path in the source tree
# (tests/test_attach.py, tests/test_list.py::test_x); default: all of tests/.
#
# For each NumPy version: a new venv; NumPy and the test dependencies
# (pyproject's [test] extra) from the package index; then the wheel alone,
# with `pip install --no-index --only-binary :all: --find-links DIST
# SharedArray`, so nothing is built and nothing else comes in.  pytest runs
# on SRC/tests from an empty directory, where the source tree's src/ is not
# importable, with a small plugin that fails the run unless
# SharedArray.__file__ is inside that venv (and prints it in the header).
#
# Options:
#   --src DIR       source tree whose tests/ run (default: this repository)
#   --dist DIR      where the wheel is (default: SRC/dist)
#   --python PY     interpreter for the venvs (default: python3; must match
#                   the wheel's cpXY tag)
#   --numpy SPEC    a NumPy requirement to test with; repeat for several
#                   (default: 'numpy>=2' and 'numpy==1.23.5')
#   --keep          keep the venvs and logs
#
# A test dependency that cannot be installed with a NumPy version (none
# today: pip picks dask 2024.8.1 for NumPy 1.23.5) is left out for that
# version, with --ignore for each test module that imports it; the run says so.
#
# Exit: non-zero if any run failed (every NumPy version is still run).
# About 2.5 minutes per NumPy version on 2 cores (most of it the suite).
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
src="$here"
dist=""
python="python3"
numpys=()
keep=0
pytest_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --src) src="$(cd "$2" && pwd)"; shift 2 ;;
        --dist) dist="$2"; shift 2 ;;
        --python) python="$2"; shift 2 ;;
        --numpy) numpys+=("$2"); shift 2 ;;
        --keep) keep=1; shift ;;
        --) shift; pytest_args=("$@"); break ;;
        -h|--help) sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "test_wheel: unknown argument $1" >&2; exit 2 ;;
    esac
done
dist="$(cd "${dist:-$src/dist}" && pwd)"
# PYTEST ARGS naming paths of the source tree (tests/test_x.py::t) are made
# absolute; without one, the whole of SRC/tests runs.
paths=0
for k in "${!pytest_args[@]}"; do
    a="${pytest_args[$k]}"
    case "$a" in -*) continue ;; esac
    if [ -e "$src/${a%%::*}" ]; then
        pytest_args[k]="$src/$a"
        paths=1
    fi
done
[ "$paths" = 1 ] || pytest_args=("$src/tests" "${pytest_args[@]}")
[ ${#numpys[@]} -gt 0 ] || numpys=('numpy>=2' 'numpy==1.23.5')
ls "$dist"/sharedarray-*.whl >/dev/null 2>&1 || {
    echo "test_wheel: no SharedArray wheel in $dist (scripts/build_wheel.sh makes one)" >&2
    exit 2
}

start=$(date +%s)
work="$(mktemp -d "${TMPDIR:-/tmp}/sa-testwheel.XXXXXX")"
cleanup() {
    if [ "$keep" = 1 ]; then echo "test_wheel: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# The test dependencies, from pyproject.toml's [test] extra.
mapfile -t testdeps < <("$python" - "$src/pyproject.toml" <<'EOF'
import sys
try:
    import tomllib
    with open(sys.argv[1], "rb") as f:
        deps = tomllib.load(f)["project"]["optional-dependencies"]["test"]
except Exception:   # Python < 3.11, or no such table
    deps = ["pytest>=7", "hypothesis>=6", "mypy>=1.5"]
print("\n".join(deps))
EOF
)

# The plugin: the run must test the wheel installed in the venv.
run="$work/run"
mkdir -p "$run"
cat >"$run/sa_wheel_check.py" <<'EOF'
import os
import sys

import pytest


def _where():
    import SharedArray
    import SharedArray._core as core
    return os.path.realpath(SharedArray.__file__), os.path.realpath(core.__file__)


def pytest_configure(config):
    prefix = os.path.realpath(sys.prefix) + os.sep
    for path in _where():
        if not path.startswith(prefix):
            raise pytest.UsageError(
                f"SharedArray imported from {path}, not from the venv {sys.prefix}")


def pytest_report_header(config):
    import numpy
    pkg, core = _where()
    return [f"SharedArray from the wheel: {pkg}", f"  extension: {core}",
            f"NumPy {numpy.__version__}"]
EOF

status=0
summary=()
i=0
for np_spec in "${numpys[@]}"; do
    i=$((i + 1))
    t0=$(date +%s)
    venv="$work/venv$i"
    echo "test_wheel: ==== $np_spec"
    "$python" -m venv "$venv"
    vpy="$venv/bin/python"
    pipq=(-m pip install -q --disable-pip-version-check)
    quiet() { "$@" 2>&1 | { grep -v '^WARNING: Location .* is ignored' || true; }; }
    # (grep: this machine's pip.conf names find-links folders that may not exist.)
    quiet "$vpy" "${pipq[@]}" --upgrade pip
    ignore=()
    if ! quiet "$vpy" "${pipq[@]}" "$np_spec" "${testdeps[@]}"; then
        # A test dependency that cannot go with this NumPy: install the
        # others one by one with NumPy held, and leave out the test modules
        # that import what could not be installed.
        quiet "$vpy" "${pipq[@]}" "$np_spec"
        echo "numpy==$("$vpy" -c 'import numpy; print(numpy.__version__)')" >"$venv/hold.txt"
        for dep in "${testdeps[@]}"; do
            quiet "$vpy" "${pipq[@]}" -c "$venv/hold.txt" "$dep" >/dev/null 2>&1 && continue
            mod="$(sed -E 's/[][<>=!~;, ].*//' <<<"$dep" | tr 'A-Z-' 'a-z_')"
            left=""
            for f in "$src"/tests/test_*.py; do
                if grep -qE "^[[:space:]]*(import|from)[[:space:]]+$mod([. ]|$)" "$f"; then
                    ignore+=("--ignore=$f")
                    left="$left $(basename "$f")"
                fi
            done
            echo "test_wheel: '$dep' cannot be installed with $np_spec; left out:${left:- nothing}"
        done
    fi
    quiet "$vpy" "${pipq[@]}" --no-index --only-binary :all: --find-links "$dist" SharedArray || true
    if ! (cd "$run" && "$vpy" -c 'import SharedArray') 2>/dev/null; then
        echo "test_wheel: the wheel did not install for $np_spec" >&2
        status=1
        summary+=("$np_spec: install FAILED")
        continue
    fi
    (cd "$run" && "$vpy" -c 'import SharedArray, numpy, sys
print("test_wheel: Python", sys.version.split()[0], "NumPy", numpy.__version__)
print("test_wheel: SharedArray", SharedArray.__file__)')
    "$vpy" -m pip list --disable-pip-version-check 2>/dev/null \
        | grep -iE '^(sharedarray|numpy|pytest|hypothesis|mypy) ' | sed 's/^/test_wheel:   /'
    rc=0
    # PYTHONDONTWRITEBYTECODE: no __pycache__ written into the source tree.
    (cd "$run" && PYTHONDONTWRITEBYTECODE=1 "$vpy" -m pytest -q \
        -p no:cacheprovider -p sa_wheel_check "${ignore[@]}" "${pytest_args[@]}") \
        >"$work/pytest$i.log" 2>&1 || rc=$?
    head -n 8 "$work/pytest$i.log" | grep -E 'SharedArray from|extension:|NumPy' || true
    tail -n 25 "$work/pytest$i.log"
    [ "$rc" = 0 ] || status=1
    last="$(grep -v '^[[:space:]]*$' "$work/pytest$i.log" | tail -n 1)"
    summary+=("$np_spec: pytest exit $rc: ${last} ($(( $(date +%s) - t0 )) s)")
done

echo "test_wheel: wheel $(basename "$(ls "$dist"/sharedarray-*.whl | head -n 1)")"
for s in "${summary[@]}"; do echo "test_wheel: $s"; done
echo "test_wheel: $(( $(date +%s) - start )) s in all"
exit "$status"
