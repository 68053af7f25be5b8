"""Soak tests: many cycles in one process must not leak anything.

Every test here runs a long loop through the public API and compares the
process's resources after a warm-up with the same resources at the end:

* open file descriptors      len(os.listdir('/proc/self/fd'))
* memory mappings            lines of /proc/self/maps
* resident memory            /proc/self/statm
* C heap in use              glibc mallinfo2().uordblks (skipped elsewhere)
* Python allocations         sys.getallocatedblocks()
* Python objects             len(gc.get_objects())
* mappings of segments       lines of /proc/self/maps naming /dev/shm or
                             the temporary directory

Under ASan or valgrind (detected from the process's mappings) only the
descriptors, Python counts and segment mappings are compared: those tools'
allocators hold freed memory and map memory of their own.

Descriptors, mappings and objects are compared between the end of the
warm-up and the end of the run; memory and allocated blocks over the second
half of the run only, because NumPy's and CPython's bounded caches keep
filling for tens of thousands of cycles.  The tolerances are absolute, so a
leak of a few bytes per cycle (every malloc'd block is at least 32 bytes)
over the 50,000 cycles of the second half exceeds them, while the noise of
a clean run (a few KiB, a few dozen blocks) stays well inside.

Counts can be raised for longer runs:

    SHAREDARRAY_SOAK_CYCLES        create/attach/delete cycles (100000)
    SHAREDARRAY_SOAK_ERROR_CYCLES  cycles per error path (10000)
    SHAREDARRAY_SOAK_VIEW_CYCLES   view/delete-order cycles (5000)

Each test prints its figures (run with -s, or see the "Captured stdout" of
-rP) on a line starting with "SOAK".
"""

import ctypes
import gc
import os
import random
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
import pytest

import SharedArray as sa
from _helpers import (
    SHM_DIR,
    build_npy,
    header_text,
    needs,
    remove_shm_entries,
    shm_path,
    under_sanitizer,
    write_bytes,
)

CYCLES = int(os.environ.get("SHAREDARRAY_SOAK_CYCLES", "100000"))
ERROR_CYCLES = int(os.environ.get("SHAREDARRAY_SOAK_ERROR_CYCLES", "10000"))
VIEW_CYCLES = int(os.environ.get("SHAREDARRAY_SOAK_VIEW_CYCLES", "5000"))

PAGE = os.sysconf("SC_PAGESIZE")

# Tolerated growth: from the warm-up snapshot to the end for descriptors,
# mappings and objects; over the second half (50,000 cycles by default) for
# memory and allocated blocks.
TOLERANCE = {
    "fds": 0,
    "segment_maps": 0,
    "maps": 0,
    "objects": 200,          # gc-tracked objects; 1 per cycle = 100k
    "rss": 2 << 20,          # bytes; 50k cycles x 42 bytes
    "malloc": 256 << 10,     # bytes; 50k cycles x 5 bytes (a malloc'd
                             # block is >= 32 bytes)
    "blocks": 1000,          # Python allocations; 1 per 50 cycles
}


class _MallInfo2(ctypes.Structure):
    _fields_ = [(f, ctypes.c_size_t) for f in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
        "fsmblks", "uordblks", "fordblks", "keepcost")]


def _mallinfo2():
    try:
        fn = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2
    fn.argtypes = []
    return fn


_MALLINFO2 = _mallinfo2()


# Under ASan or valgrind, RSS, heap and mapping counts mean nothing;
# descriptors, Python objects and mappings of segments still do.
SANITIZER = under_sanitizer()
SEGMENT_DIRS = (SHM_DIR + "/", os.path.realpath(tempfile.gettempdir()) + "/")


def snapshot():
    gc.collect()
    with open("/proc/self/statm") as f:
        rss = int(f.read().split()[1]) * PAGE
    with open("/proc/self/maps") as f:
        lines = f.read().splitlines()
    snap = {
        "fds": len(os.listdir("/proc/self/fd")),
        # Mappings of segments (shm or file://), deleted ones included.
        "segment_maps": sum(1 for ln in lines
                            if any(d in ln for d in SEGMENT_DIRS)),
        "blocks": sys.getallocatedblocks(),
        "objects": len(gc.get_objects()),
    }
    if not SANITIZER:
        snap["maps"] = len(lines)
        snap["rss"] = rss
        if _MALLINFO2 is not None:
            snap["malloc"] = _MALLINFO2().uordblks
    return snap


# Compared from the warm-up to the end: must not move at all (or barely).
WHOLE_RUN = ("fds", "segment_maps", "maps", "objects")
# Compared over the second half only: NumPy's and CPython's own bounded
# caches (dtype and AST caches, free lists) keep filling slowly for tens of
# thousands of cycles; a leak grows as fast in the second half as anywhere.
SECOND_HALF = ("rss", "malloc", "blocks")


def assert_flat(label, before, mid, after, cycles, seconds):
    growth = {k: after[k] - before[k] for k in before}
    late = {k: after[k] - mid[k] for k in SECOND_HALF if k in before}
    print(f"SOAK {label}: {cycles} cycles in {seconds:.2f} s "
          f"({cycles / seconds:,.0f}/s); before {before}; growth {growth}; "
          f"second-half growth {late}")
    bad = {k: (growth[k], TOLERANCE[k]) for k in WHOLE_RUN
           if k in growth and growth[k] > TOLERANCE[k]}
    bad.update({k: (v, TOLERANCE[k]) for k, v in late.items()
                if v > TOLERANCE[k]})
    assert not bad, (f"{label}: resources grew past tolerance "
                     f"(growth, tolerance): {bad}; before={before} mid={mid} "
                     f"after={after}")


def run_soak(label, cycle, cycles, warmup=None):
    """Runs cycle(i) warm-up times, snapshots, runs it cycles times more
    (snapshotting halfway) and compares."""
    warmup = warmup if warmup is not None else max(200, min(2000, cycles // 20))
    for i in range(warmup):
        cycle(i)
    before = snapshot()
    t0 = time.perf_counter()
    half = cycles // 2
    for i in range(half):
        cycle(i)
    pause = time.perf_counter()
    mid = snapshot()
    t1 = time.perf_counter()
    for i in range(half, cycles):
        cycle(i)
    seconds = time.perf_counter() - t1 + pause - t0
    after = snapshot()
    assert_flat(label, before, mid, after, cycles, seconds)


# ----------------------------------------------------------------------
# The main loop.

DTYPES = [np.dtype(d) for d in ("<f8", "<i4", "u1", ">c8", "S3", "<M8[us]")]
STRUCT = np.dtype([("id", "<u4"), ("xy", ">f4", (2,)), ("tag", "S2")])


def test_create_attach_delete_cycles(shm_name):
    """CYCLES rounds of create, write, attach rw/ro, verify, delete."""
    name = shm_name()
    src = np.asfortranarray(np.arange(12, dtype="<i8").reshape(3, 4))

    def cycle(i):
        k = i % 8
        if k < 5:
            dt = DTYPES[i % len(DTYPES)]
            a = sa.create(name, (k + 1, 3), dt)
            a.view("u1")[k, :] = i & 0xFF
            b = sa.attach(name)
            c = sa.attach(name, ro=True)
            assert b.dtype == dt and c.shape == (k + 1, 3)
            assert c.view("u1")[k, 0] == i & 0xFF
            sa.delete(name)
            # Still mapped after delete.
            b.view("u1")[0, 0] = 1
            assert a.view("u1")[0, 0] == 1
        elif k == 5:
            a = sa.from_array(name, src)
            b = sa.attach(name, ro=True)
            assert b.flags.f_contiguous and b[2, 3] == 11
            sa.delete(name)
        elif k == 6:
            a = sa.create(name, 4, STRUCT)
            a["id"] = i
            b = sa.attach(name)
            assert b.dtype == STRUCT and b["id"][3] == i
            sa.delete(name)
        else:
            a = sa.create(name, (2, 0, 5) if i & 8 else (), "<f2", order="F")
            d = sa.info(name)
            assert d.dims == a.shape and d.dtype == a.dtype
            sa.delete(name)

    run_soak("create/attach/delete", cycle, CYCLES)
    assert not os.path.lexists(shm_path(name))


def test_file_backend_cycles(tmp_path):
    """The file:// backend (a disk filesystem here) cycles cleanly too."""
    uri = "file://" + str(tmp_path / "soak.npy")
    n = max(1000, CYCLES // 10)

    def cycle(i):
        a = sa.create(uri, 513, "<u2")
        a[-1] = i & 0xFFFF
        b = sa.attach(uri, ro=True)
        assert b[-1] == i & 0xFFFF
        sa.delete(uri)

    run_soak("file:// create/attach/delete", cycle, n)
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------
# Error paths.  Each cycle must raise exactly the expected exception.

def _corrupt_files(name):
    """name -> bytes of damaged segments, one per failure mode."""
    data = b"\0" * 64
    long_text = header_text([(f"f{i}", "<i4") for i in range(400)], (1,))
    return {
        "garbage-header": (build_npy("{'descr': '<f8', 'oops"), ValueError),
        "truncated-data": (build_npy(header_text("<f8", (100,)), data), ValueError),
        "bad-structured-descr": (build_npy(
            "{'descr': [('a', 'nonsense')], 'fortran_order': False, "
            "'shape': (2,), }", data), ValueError),
        "object-dtype": (build_npy(header_text("|O", (2,)), data), ValueError),
        # > 4 KiB header: read into a malloc'd buffer, then refused.
        "long-header-too-short": (build_npy(long_text, b"")[:6000], ValueError),
        "long-header-corrupt": (
            build_npy(long_text.replace("'shape'", "'shapf'"), data),
            ValueError),
        "sharedarray3-like": (b"x" * 400, ValueError),
    }


@pytest.mark.parametrize("kind", [
    "attach-missing", "info-missing", "delete-missing",
    "create-existing", "from_array-existing",
    "attach-corrupt", "info-corrupt", "delete-non-array",
    "invalid-name", "bad-arguments", "create-missing-dir",
])
def test_error_path_cycles(shm_name, tmp_path, kind):
    name = shm_name()
    missing = shm_name()
    big = np.arange(3000, dtype="<f8")
    corrupt = _corrupt_files(name)
    corrupt_names = {}
    for label, (content, exc) in corrupt.items():
        n = shm_name(suffix="-" + label)
        write_bytes(shm_path(n), content)
        corrupt_names[n] = exc
    items = list(corrupt_names.items())
    text_file = shm_name(suffix="-text")
    write_bytes(shm_path(text_file), b"not an array\n")
    fifo = shm_name(suffix="-fifo")
    os.mkfifo(shm_path(fifo))
    directory = shm_name(suffix="-dir")
    os.mkdir(shm_path(directory))
    link = shm_name(suffix="-link")
    os.symlink(shm_path(name), shm_path(link))
    keep = sa.create(name, 10, "f8")
    keep[:] = 7

    def expect(exc, fn, *args, **kw):
        try:
            fn(*args, **kw)
        except exc:
            return
        raise AssertionError(f"{fn.__name__}{args} did not raise {exc}")

    if kind == "attach-missing":
        def cycle(i):
            expect(FileNotFoundError, sa.attach, missing, ro=bool(i & 1))
    elif kind == "info-missing":
        def cycle(i):
            expect(FileNotFoundError, sa.info, missing)
    elif kind == "delete-missing":
        def cycle(i):
            expect(FileNotFoundError, sa.delete, missing)
    elif kind == "create-existing":
        # Fails at publish time, after the segment was built and mapped.
        def cycle(i):
            expect(FileExistsError, sa.create, name, (i % 5 + 1, 100), "<i4")
    elif kind == "from_array-existing":
        def cycle(i):
            expect(FileExistsError, sa.from_array, name, big)
    elif kind == "attach-corrupt":
        def cycle(i):
            n, exc = items[i % len(items)]
            expect(exc, sa.attach, n, ro=bool(i & 1))
    elif kind == "info-corrupt":
        def cycle(i):
            n, exc = items[i % len(items)]
            expect(exc, sa.info, n)
    elif kind == "delete-non-array":
        nonarrays = [text_file, fifo, directory, link]

        def cycle(i):
            expect(ValueError, sa.delete, nonarrays[i % len(nonarrays)])
    elif kind == "invalid-name":
        bad = ["shm://a/b", "x\0y", "..", "shm://.", "x" * 256, "http://x",
               "", "file://", "file://dir/"]

        def cycle(i):
            expect(ValueError, sa.attach, bad[i % len(bad)])
            expect(ValueError, sa.create, bad[(i + 1) % len(bad)], 3)
            expect(TypeError, sa.attach, b"bytes-name")
    elif kind == "bad-arguments":
        def cycle(i):
            expect(ValueError, sa.create, missing, (-1, 2))
            expect(TypeError, sa.create, missing, 3, dtype=object)
            expect(TypeError, sa.from_array, missing, np.array([None, 1]))
            expect(ValueError, sa.create, missing, 3, order="K")
            expect(ValueError, sa.create, missing, (2**40, 2**40))
            expect(TypeError, sa.attach)
    elif kind == "create-missing-dir":
        uri = "file://" + str(tmp_path / "no-such-dir" / "x.npy")

        def cycle(i):
            expect(FileNotFoundError, sa.create, uri, 3)

    run_soak(f"error path {kind}", cycle, ERROR_CYCLES)
    assert not os.path.lexists(shm_path(missing))
    assert sa.attach(name).tolist() == [7.0] * 10
    # Nothing new appeared: only the files this test made.
    assert os.listdir(tmp_path) == []
    sa.delete(name)
    for n in list(corrupt_names) + [text_file, fifo, directory, link]:
        assert os.path.lexists(shm_path(n))


@needs("list")
def test_list_cycles(shm_name):
    """list() over a directory with arrays, damaged arrays and non-arrays."""
    names = []
    for i in range(5):
        n = shm_name()
        sa.create(n, i + 1, "<i2")
        names.append(n)
    for label, (content, _) in _corrupt_files("x").items():
        write_bytes(shm_path(shm_name(suffix="-" + label)), content)
    os.mkfifo(shm_path(shm_name(suffix="-fifo")))
    os.symlink(shm_path(names[0]), shm_path(shm_name(suffix="-link")))

    def cycle(i):
        seen = {e.name for e in sa.list() if e.name.startswith(names[0][:-8])}
        assert set(names) <= seen, seen

    run_soak("list()", cycle, max(100, ERROR_CYCLES // 20), warmup=20)
    for n in names:
        sa.delete(n)


# ----------------------------------------------------------------------
# Lifetimes: views outliving their array, arrays outliving delete.

def _maps_lines():
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)


def test_views_outlive_base_in_any_order(shm_name):
    """Views of every kind keep the mapping alive, whatever order the array,
    the views and the name go away in; the data stays right until the last
    one is gone, and then the mapping is released."""
    name = shm_name()
    rng = random.Random(1234)
    base_maps = _maps_lines()

    def cycle(i):
        n = 64 + i % 7
        a = sa.create(name, (n,), "<i8")
        a[:] = np.arange(n) * (i + 1)
        refs = {
            "array": a,
            "attached": sa.attach(name, ro=bool(i & 1)),
            "slice": a[3::2],
            "reshape": a[:60].reshape(6, 10).T,
            "dtype-view": a.view("<u4")[1::2],
            "mapping": a.base,
            "memoryview": memoryview(a),
            "frombuffer": np.frombuffer(a.base, "<u1"),
            "view-of-view": a[::-1][::3],
        }
        del a
        order = list(refs) + ["delete"]
        rng.shuffle(order)
        for key in order:
            if key == "delete":
                sa.delete(name)
                continue
            # Before dropping it, check what is still alive reads right.
            for other, obj in refs.items():
                if other in ("slice",):
                    assert obj[0] == 3 * (i + 1)
                elif other == "array":
                    assert obj[n - 1] == (n - 1) * (i + 1)
                elif other == "attached":
                    assert obj[5] == 5 * (i + 1)
            del refs[key]
        assert not refs

    run_soak("views outlive base", cycle, VIEW_CYCLES, warmup=100)
    assert SANITIZER or _maps_lines() == base_maps
    assert not os.path.lexists(shm_path(name))


def test_arrays_outlive_delete(shm_name):
    """A ring of live arrays whose names were deleted (and reused by new
    arrays) keeps its own data: no array sees a later array's memory."""
    names = [shm_name() for _ in range(8)]
    ring = []

    def cycle(i):
        n = names[i % len(names)]
        a = sa.create(n, 256, "<u8")
        a[:] = i
        ring.append((i, a, sa.attach(n, ro=True)))
        sa.delete(n)
        if len(ring) > 64:
            j, old, old_ro = ring.pop(0)
            assert old_ro[0] == j and old_ro[-1] == j and (old == j).all()

    run_soak("arrays outlive delete", cycle, VIEW_CYCLES, warmup=100)
    ring.clear()
    for n in names:
        assert not os.path.lexists(shm_path(n))


# ----------------------------------------------------------------------
# Interpreter shutdown with live arrays.

SHUTDOWN_SCENARIOS = {
    "global-array-name-kept": """
        a = sa.create(N, 1000, "f8"); a[:] = 1
        v = a[::3]
        """,
    "global-array-name-deleted": """
        a = sa.create(N, 1000, "f8"); a[:] = 1
        b = sa.attach(N, ro=True)
        sa.delete(N)
        """,
    "view-outlives-array": """
        a = sa.create(N, (100, 100), "<i4")
        v = a[10:20].T
        w = np.frombuffer(a.base, "u1")
        del a
        sa.delete(N)
        """,
    "mapping-and-memoryview-only": """
        a = sa.create(N, 100, "u1")
        m = a.base
        mv = memoryview(m)
        del a
        """,
    "reference-cycle-with-finalizer": """
        class Holder:
            def __del__(self):
                # Runs during shutdown: the array must still be readable
                # (indexing only: NumPy's reductions import lazily).
                print("finalizer sum", sum(int(x) for x in self.a.tolist()))
        h = Holder()
        h.a = sa.create(N, 10, "i8"); h.a[:] = 2
        h.self = h
        sa.delete(N)
        """,
    "finalizer-calls-library": """
        class Cleaner:
            def __init__(self, delete, attach):
                self.delete, self.attach = delete, attach
            def __del__(self):
                x = self.attach(N, ro=True)
                print("finalizer attach", int(x[0]))
                self.delete(N)
        a = sa.create(N, 4, "i8"); a[:] = 5
        c = Cleaner(sa.delete, sa.attach)
        """,
    "attribute-of-extension-module": """
        sa.keep = sa.create(N, 10, "f4")
        np.keep = sa.attach(N)
        sa.delete(N)
        """,
    "atexit-handler": """
        import atexit
        a = sa.create(N, 10, "f4"); a[:] = 3
        def bye(arr=a):
            print("atexit", float(arr.sum()))
            sa.delete(N)
        atexit.register(bye)
        """,
    "thread-created-arrays": """
        import threading
        keep = []
        def work():
            for i in range(20):
                keep.append(sa.create(N + "-%d" % i, 100, "u1"))
                keep.append(keep[-1][::2])
            for i in range(20):
                sa.delete(N + "-%d" % i)
        t = threading.Thread(target=work); t.start(); t.join()
        """,
    "daemon-threads-still-working": """
        import threading
        started = threading.Barrier(4)
        def churn(k):
            n = N + "-t%d" % k
            started.wait()
            while True:
                try:
                    a = sa.create(n, 4096, "u1")
                    b = sa.attach(n, ro=True)
                    sa.delete(n)
                    del a, b
                except FileExistsError:
                    pass
        for k in range(3):
            threading.Thread(target=churn, args=(k,), daemon=True).start()
        started.wait()
        import time; time.sleep(0.2)
        """,
    "interrupted-from-thread": """
        import _thread, threading, time
        a = sa.create(N, 1000, "f8")
        def poke():
            time.sleep(0.05)
            _thread.interrupt_main()
        threading.Thread(target=poke).start()
        try:
            while True:
                b = sa.attach(N)
                b[0] += 1
        except KeyboardInterrupt:
            pass
        sa.delete(N)
        """,
    "sys-exit-inside-with-live-arrays": """
        a = sa.create(N, 10, "u1")
        v = a[2:]
        sa.delete(N)
        try:
            sys.exit(0)
        finally:
            print("OK")
        """,
}


@pytest.mark.parametrize("scenario", sorted(SHUTDOWN_SCENARIOS))
def test_interpreter_shutdown_with_live_arrays(shm_name, scenario):
    """Exit with live arrays and views in many states; -X dev turns on
    CPython's debug allocator and warnings.  Exit status 0, no stderr."""
    name = shm_name()
    code = ("import sys\nimport numpy as np\nimport SharedArray as sa\n"
            f"N = {name!r}\n" + textwrap.dedent(SHUTDOWN_SCENARIOS[scenario])
            + "\nprint('OK')\n")
    try:
        proc = subprocess.run([sys.executable, "-X", "dev", "-c", code],
                              capture_output=True, text=True, timeout=120,
                              check=False)
    finally:
        left = remove_shm_entries(name)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "OK" in proc.stdout
    expected_left = [name] if scenario in (
        "global-array-name-kept", "mapping-and-memoryview-only") else []
    # Daemon threads may be stopped anywhere, even between create and delete.
    if scenario != "daemon-threads-still-working":
        assert left == expected_left
    if scenario == "reference-cycle-with-finalizer":
        assert "finalizer sum 20" in proc.stdout
    if scenario == "finalizer-calls-library":
        assert "finalizer attach 5" in proc.stdout
    if scenario == "atexit-handler":
        assert "atexit 30.0" in proc.stdout
