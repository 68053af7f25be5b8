"""One contender's side of every benchmark figure, in a process of its own.

run.py starts one worker per Python contender, with that contender's
interpreter (SharedArray 4 and 3.2.4 are both the module ``SharedArray``, so
each lives in its own virtual environment), and sends it one request per
figure and round.  This file therefore needs nothing but the standard
library and NumPy, and imports SharedArray only when asked to.

    python _worker.py KIND
        Serve requests: one JSON object a line on stdin, one JSON answer a
        line on stdout.  The first line out says hello (versions).
    python _worker.py --child KIND REF COUNT WARM_REF
        The fresh process of the first_read figure: attach REF (COUNT
        float64), read one byte of every page, print the time taken.
        WARM_REF, a small array, is attached first, untimed, so that what
        any first call costs (lazy imports, caches) is not counted.

KIND is one of ``sharedarray`` (whichever SharedArray this interpreter
imports), ``shared_memory`` or ``npy``; see KINDS at the bottom.
"""

import gc
import json
import os
import subprocess
import sys
import time
import traceback

import numpy as np

PAGE = os.sysconf("SC_PAGE_SIZE")
SHM_DIR = "/dev/shm"
SMALL = 10              # float64 elements of the small array
CALIBRATION_OPS = 1000  # timings of an empty op, for the timer's overhead


class Unsupported(Exception):
    """The contender cannot do this at all: its cell shows n/a."""


def _nothing():
    pass


# ---- contenders ------------------------------------------------------------
#
# Each names a segment (ref), makes and removes one outside any timing, and
# builds the zero-argument callables that are timed.  The callables are
# written out per contender, not composed from the helpers, so that the
# timed code is what a user would write and carries no extra Python calls.


class SharedArrayLib:
    """SharedArray 4 or 3.2.4, whichever this interpreter imports."""

    def __init__(self):
        import SharedArray

        self.sa = SharedArray

    def ref(self, directory, base):
        if directory == SHM_DIR:
            return "shm://" + base
        return "file://" + os.path.join(directory, base)

    def make(self, ref, count):
        self.sa.create(ref, count)[:] = 1

    def remove(self, ref):
        self.sa.delete(ref)

    def attach(self, ref, count):
        return self.sa.attach(ref), _nothing

    def attach_op(self, ref, count, read):
        attach = self.sa.attach
        if read:
            def op():
                return attach(ref)[0]
        else:
            def op():
                attach(ref)
        return op

    def create_op(self, ref, count, fill):
        create, delete = self.sa.create, self.sa.delete
        if fill:
            def op():
                a = create(ref, count)
                a[:] = 1
                del a
                delete(ref)
        else:
            def op():
                create(ref, count)
                delete(ref)
        return op

    def list_op(self, directory):
        if directory != SHM_DIR:
            raise Unsupported("list() scans /dev/shm only")
        return self.sa.list


class SharedMemoryLib:
    """multiprocessing.shared_memory.SharedMemory + np.ndarray(buffer=...).

    A segment is raw bytes: its shape and dtype travel separately (here, the
    caller's count of float64).  Before Python 3.13 every SharedMemory
    registers with the resource tracker, which then warns about, and
    unlinks, segments it thinks leaked; this worker owns its segments'
    lifetimes, so tracking is off (track=False on 3.13+).
    """

    def __init__(self):
        from multiprocessing import shared_memory

        self.kw = {}
        if sys.version_info >= (3, 13):
            self.kw = {"track": False}
        else:
            tracker = shared_memory.resource_tracker
            tracker.register = tracker.unregister = lambda name, rtype: None
        self.SharedMemory = shared_memory.SharedMemory

    def ref(self, directory, base):
        if directory != SHM_DIR:
            raise Unsupported("SharedMemory lives in /dev/shm only")
        return base

    def make(self, ref, count):
        shm = self.SharedMemory(ref, create=True, size=8 * count, **self.kw)
        np.ndarray((count,), np.float64, buffer=shm.buf)[:] = 1
        shm.close()

    def remove(self, ref):
        shm = self.SharedMemory(ref, **self.kw)
        shm.close()
        shm.unlink()

    def attach(self, ref, count):
        shm = self.SharedMemory(ref, **self.kw)
        return np.ndarray((count,), np.float64, buffer=shm.buf), shm.close

    def attach_op(self, ref, count, read):
        SharedMemory, kw, ndarray, f8 = (self.SharedMemory, self.kw,
                                         np.ndarray, np.float64)
        if read:
            def op():
                shm = SharedMemory(ref, **kw)
                a = ndarray((count,), f8, buffer=shm.buf)
                x = a[0]
                del a
                shm.close()
                return x
        else:
            def op():
                shm = SharedMemory(ref, **kw)
                a = ndarray((count,), f8, buffer=shm.buf)
                del a
                shm.close()
        return op

    def create_op(self, ref, count, fill):
        SharedMemory, kw, ndarray, f8 = (self.SharedMemory, self.kw,
                                         np.ndarray, np.float64)

        def op():
            shm = SharedMemory(ref, create=True, size=8 * count, **kw)
            a = ndarray((count,), f8, buffer=shm.buf)
            if fill:
                a[:] = 1
            del a
            shm.close()
            shm.unlink()
        return op

    def list_op(self, directory):
        raise Unsupported("no way to list segments")


class NpyLib:
    """A .npy file: np.lib.format.open_memmap to create, np.load(path,
    mmap_mode='r+') to attach, os.unlink to delete; list is a Python loop
    over os.scandir reading each file's header with np.lib.format."""

    def ref(self, directory, base):
        return os.path.join(directory, base)

    def make(self, ref, count):
        a = np.lib.format.open_memmap(ref, mode="w+", dtype=np.float64,
                                      shape=(count,))
        a[:] = 1
        del a

    def remove(self, ref):
        os.unlink(ref)

    def attach(self, ref, count):
        return np.load(ref, mmap_mode="r+"), _nothing

    def attach_op(self, ref, count, read):
        load = np.load
        if read:
            def op():
                return load(ref, mmap_mode="r+")[0]
        else:
            def op():
                load(ref, mmap_mode="r+")
        return op

    def create_op(self, ref, count, fill):
        open_memmap, unlink = np.lib.format.open_memmap, os.unlink
        f8 = np.float64

        def op():
            a = open_memmap(ref, mode="w+", dtype=f8, shape=(count,))
            if fill:
                a[:] = 1
            del a
            unlink(ref)
        return op

    def list_op(self, directory):
        return lambda: list_npy(directory)


def list_npy(directory):
    """(name, dtype, shape) of every .npy file in directory, as np.load
    would read them."""
    fmt = np.lib.format
    readers = {(1, 0): fmt.read_array_header_1_0,
               (2, 0): fmt.read_array_header_2_0}
    found = []
    for entry in os.scandir(directory):
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            with open(entry.path, "rb") as f:
                read = readers.get(fmt.read_magic(f))
                if read is None:
                    continue
                shape, _, dtype = read(f)
        except Exception:
            # Vanished, not ours to read, or not a valid .npy file: a bad
            # header can raise ValueError, SyntaxError, tokenize.TokenError...
            continue
        found.append((entry.name, dtype, shape))
    return found


KINDS = {
    "sharedarray": SharedArrayLib,
    "shared_memory": SharedMemoryLib,
    "npy": NpyLib,
}


# ---- timing ----------------------------------------------------------------


def time_ops(op, n, warmup):
    """Per-op times in ns of n calls of op, after warmup untimed ones."""
    for _ in range(warmup):
        op()
    clock = time.perf_counter_ns
    times = [0] * n
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(n):
            t0 = clock()
            op()
            times[i] = clock() - t0
    finally:
        if gc_was_enabled:
            gc.enable()
    return times


def timed(op, n, warmup):
    """The answer for an in-process figure: per-op times, and the median
    time of an empty op measured the same way (run.py subtracts it)."""
    calibration = sorted(time_ops(_nothing, CALIBRATION_OPS, 100))
    return {"times_ns": time_ops(op, n, warmup),
            "overhead_ns": calibration[len(calibration) // 2]}


def touch_pages(a):
    """Reads one byte of every page of a's data, in one ufunc call over a
    strided uint8 view (dtype=uint8: no casting, so no buffering)."""
    return np.add.reduce(a.view(np.uint8)[::PAGE], dtype=np.uint8)


def shmem_pmd_kb():
    """Shared memory this process maps with huge (PMD) pages, in kB."""
    try:
        with open("/proc/self/smaps_rollup") as f:
            for line in f:
                if line.startswith("ShmemPmdMapped:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


# ---- figures ---------------------------------------------------------------
#
# Each gets the contender and the request, and cleans up whatever it made,
# whatever happens.  Every segment lives at os.path.join(dir, base) with base
# starting with run.py's prefix and this worker's pid.


class Segments:
    """Names segments, and removes at exit any that still exist."""

    def __init__(self, lib, req):
        self.lib = lib
        self.dir = req["dir"]
        self.base = f"{req['prefix']}-{os.getpid()}-{req['op']}"
        self.made = []

    def ref(self, suffix=""):
        base = self.base + suffix
        self.made.append((self.lib.ref(self.dir, base),
                          os.path.join(self.dir, base)))
        return self.made[-1][0]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for ref, path in self.made:
            if os.path.lexists(path):
                try:
                    self.lib.remove(ref)
                except Exception:
                    os.unlink(path)


def fig_attach(lib, req, read=False):
    with Segments(lib, req) as seg:
        ref = seg.ref()
        lib.make(ref, SMALL)
        return timed(lib.attach_op(ref, SMALL, read), req["n"], req["warmup"])


def fig_attach_read(lib, req):
    return fig_attach(lib, req, read=True)


def fig_create_delete(lib, req):
    with Segments(lib, req) as seg:
        op = lib.create_op(seg.ref(), SMALL, fill=False)
        return timed(op, req["n"], req["warmup"])


def fig_create_fill(lib, req):
    with Segments(lib, req) as seg:
        op = lib.create_op(seg.ref(), req["size"] // 8, fill=True)
        return timed(op, req["n"], req["warmup"])


def fig_list(lib, req):
    op = lib.list_op(req["dir"])    # Unsupported before making anything
    with Segments(lib, req) as seg:
        for i in range(req["count"]):
            lib.make(seg.ref(f"-{i}"), SMALL)
        found = len(op())
        if found < req["count"]:
            raise RuntimeError(f"list() found {found} of our "
                               f"{req['count']} arrays")
        return timed(op, req["n"], req["warmup"])


def fig_first_read(lib, req):
    count = req["size"] // 8
    times, pmd = [], []
    with Segments(lib, req) as seg:
        ref, warm = seg.ref(), seg.ref("-warm")
        lib.make(ref, count)
        lib.make(warm, SMALL)
        for _ in range(req["n"]):
            out = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--child",
                 req["kind"], ref, str(count), warm],
                stdout=subprocess.PIPE, check=True, text=True).stdout
            child = json.loads(out.splitlines()[-1])
            times.append(child["ns"])
            pmd.append(child["pmd_kb"])
    known = [kb for kb in pmd if kb is not None]
    return {"times_ns": times, "overhead_ns": 0,
            "pmd_kb": min(known) if known else None}


FIGURES = {
    "attach": fig_attach,
    "attach_read": fig_attach_read,
    "create_delete": fig_create_delete,
    "create_fill": fig_create_fill,
    "list": fig_list,
    "first_read": fig_first_read,
}


# ---- entry points ----------------------------------------------------------


def child(kind, ref, count, warm):
    """Fresh process: time attach + one byte read per page (not the
    release, nor interpreter start-up, imports and first calls)."""
    lib = KINDS[kind]()
    a, release = lib.attach(warm, SMALL)
    touch_pages(a)
    del a
    release()
    gc.disable()
    t0 = time.perf_counter_ns()
    a, release = lib.attach(ref, count)
    touch_pages(a)
    ns = time.perf_counter_ns() - t0
    pmd_kb = shmem_pmd_kb()
    del a
    release()
    print(json.dumps({"ns": ns, "pmd_kb": pmd_kb}))


def versions():
    from importlib import metadata

    info = {"python": sys.version.split()[0], "numpy": np.__version__}
    try:
        info["SharedArray"] = metadata.version("SharedArray")
    except metadata.PackageNotFoundError:
        info["SharedArray"] = None
    return info


def serve(kind):
    # Answers go to the original stdout; anything else printed (a library's
    # chatter, an editable install rebuilding) goes to stderr.
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)

    def send(obj):
        answers.write(json.dumps(obj) + "\n")

    try:
        lib = KINDS[kind]()
    except Exception as e:
        send({"ok": False, "error": f"{type(e).__name__}: {e}"})
        return
    send({"ok": True, "hello": versions()})
    for line in sys.stdin:
        req = json.loads(line)
        req["kind"] = kind
        try:
            send({"ok": True, **FIGURES[req["op"]](lib, req)})
        except Unsupported as e:
            send({"ok": False, "na": str(e)})
        except Exception:
            send({"ok": False, "error": traceback.format_exc()})


def main(argv):
    if len(argv) == 6 and argv[1] == "--child":
        child(argv[2], argv[3], int(argv[4]), argv[5])
    elif len(argv) == 2 and argv[1] in KINDS:
        serve(argv[1])
    else:
        sys.exit(f"usage: {argv[0]} {{{'|'.join(KINDS)}}}\n"
                 f"       {argv[0]} --child KIND REF COUNT WARM_REF")


if __name__ == "__main__":
    main(sys.argv)
