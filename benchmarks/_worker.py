"""One contender's side of every benchmark figure, in a process of its own.

run.py starts one worker per Python contender, with that contender's
interpreter (SharedArray 4 and 3.2.4 are both the module ``SharedArray``, so
each lives in its own virtual environment), and sends it one request per
figure and round.  This file therefore needs nothing but the standard
library and NumPy, and imports SharedArray only when asked to.

    python _worker.py KIND
        Serve requests: one JSON object a line on stdin, one JSON answer a
        line on stdout.  The first line out says hello (versions).
    python _worker.py --child first_read KIND REF COUNT WARM_REF
        A fresh process of the first_read figures: attach REF (COUNT
        float64), read one byte of every page, print the time taken.
        WARM_REF, a small array, is attached first, untimed, so that what
        any first call costs (lazy imports, caches) is not counted.
    python _worker.py --child list KIND DIR COUNT
        A fresh process of the list_cold figure: time the first list() of
        DIR (which holds at least COUNT of our arrays), imports done before.

KIND is one of ``sharedarray`` (whichever SharedArray this interpreter
imports), ``shared_memory`` or ``npy``; see KINDS at the bottom.
"""

import gc
import json
import os
import pickle
import subprocess
import sys
import time
import traceback
from contextlib import contextmanager
from multiprocessing.reduction import ForkingPickler

import numpy as np

PAGE = os.sysconf("SC_PAGE_SIZE")
SHM_DIR = "/dev/shm"
SMALL = 10              # float64 elements of the small array
CALIBRATION_OPS = 1000  # timings of an empty op, for the timer's overhead


class Unsupported(Exception):
    """The contender cannot do this at all: its cell shows n/a."""


def _nothing(_=None):
    pass


# ---- contenders ------------------------------------------------------------
#
# Each names a segment (ref), makes and removes one outside any timing, and
# builds the one-argument callables that are timed (the argument is what
# varies from one operation to the next: a ref, the bytes received, a
# directory).  The callables are written out per contender, not composed
# from the helpers, so that the timed code is what a user would write and
# carries no extra Python calls.


class Lib:
    """What every contender shares."""

    def make(self, ref, count, probe=None):
        """Creates ref with count float64 set to 1 and releases it; returns
        probe(array), called while the array is still mapped, if given."""
        a, release = self.create(ref, count)
        a[:] = 1
        out = probe(a) if probe else None
        del a
        release()
        return out

    def forget(self):
        """Drops whatever this process keeps of arrays attached before."""


class SharedArrayLib(Lib):
    """SharedArray 4 or 3.2.4, whichever this interpreter imports."""

    def __init__(self):
        import SharedArray

        self.sa = SharedArray

    def ref(self, directory, base):
        if directory == SHM_DIR:
            return "shm://" + base
        return "file://" + os.path.join(directory, base)

    def create(self, ref, count):
        return self.sa.create(ref, count), _nothing

    def remove(self, ref):
        self.sa.delete(ref)

    def forget(self):
        # SharedArray 4's per-process mapping cache, where it has one.
        cache_clear = getattr(self.sa, "cache_clear", None)
        if cache_clear is not None:
            cache_clear()

    def attach(self, ref, count):
        return self.sa.attach(ref), _nothing

    def attach_op(self, count, read):
        attach = self.sa.attach
        if read:
            def op(ref):
                return attach(ref)[0]
        else:
            def op(ref):
                attach(ref)
        return op

    def receive_op(self, ref, count):
        loads, attach = pickle.loads, self.sa.attach
        Mapping = getattr(self.sa, "Mapping", None)
        if Mapping is None:
            # SharedArray 3.x: multiprocessing would copy the array, so the
            # habit is to send the name and attach it on the other side.
            def op(data):
                return attach(loads(data))[0]
            return op, bytes(ForkingPickler.dumps(ref))

        # SharedArray 4: the array itself, sent by reference.
        data = bytes(ForkingPickler.dumps(attach(ref)[:]))
        base = loads(data).base
        while isinstance(base, np.ndarray):
            base = base.base
        if not isinstance(base, Mapping):
            raise RuntimeError("ForkingPickler sent the array by value")

        def op(data):
            return loads(data)[0]
        return op, data

    def create_op(self, count, fill):
        create, delete = self.sa.create, self.sa.delete
        if fill:
            def op(ref):
                a = create(ref, count)
                a[:] = 1
                del a
                delete(ref)
        else:
            def op(ref):
                create(ref, count)
                delete(ref)
        return op

    def list_op(self, directory):
        if directory != SHM_DIR:
            raise Unsupported("list() scans /dev/shm only")
        sa_list = self.sa.list

        def op(_):
            return sa_list()
        return op


class SharedMemoryLib(Lib):
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

    def create(self, ref, count):
        shm = self.SharedMemory(ref, create=True, size=8 * count, **self.kw)
        return np.ndarray((count,), np.float64, buffer=shm.buf), shm.close

    def remove(self, ref):
        shm = self.SharedMemory(ref, **self.kw)
        shm.close()
        shm.unlink()

    def attach(self, ref, count):
        shm = self.SharedMemory(ref, **self.kw)
        return np.ndarray((count,), np.float64, buffer=shm.buf), shm.close

    def attach_op(self, count, read):
        SharedMemory, kw, ndarray, f8 = (self.SharedMemory, self.kw,
                                         np.ndarray, np.float64)
        if read:
            def op(ref):
                shm = SharedMemory(ref, **kw)
                a = ndarray((count,), f8, buffer=shm.buf)
                x = a[0]
                del a
                shm.close()
                return x
        else:
            def op(ref):
                shm = SharedMemory(ref, **kw)
                a = ndarray((count,), f8, buffer=shm.buf)
                del a
                shm.close()
        return op

    def receive_op(self, ref, count):
        # The name and the shape, which does not travel with the segment.
        SharedMemory, kw, ndarray, f8 = (self.SharedMemory, self.kw,
                                         np.ndarray, np.float64)
        loads = pickle.loads

        def op(data):
            name, n = loads(data)
            shm = SharedMemory(name, **kw)
            a = ndarray((n,), f8, buffer=shm.buf)
            x = a[0]
            del a
            shm.close()
            return x
        return op, bytes(ForkingPickler.dumps((ref, count)))

    def create_op(self, count, fill):
        SharedMemory, kw, ndarray, f8 = (self.SharedMemory, self.kw,
                                         np.ndarray, np.float64)

        def op(ref):
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


class NpyLib(Lib):
    """A .npy file: np.lib.format.open_memmap to create, np.load(path,
    mmap_mode='r+') to attach, os.unlink to delete; list is a Python loop
    over os.scandir reading each file's header with np.lib.format."""

    def __init__(self):
        pass  # what list_npy uses: imported up front

    def ref(self, directory, base):
        return os.path.join(directory, base)

    def create(self, ref, count):
        a = np.lib.format.open_memmap(ref, mode="w+", dtype=np.float64,
                                      shape=(count,))
        return a, _nothing

    def remove(self, ref):
        os.unlink(ref)

    def attach(self, ref, count):
        return np.load(ref, mmap_mode="r+"), _nothing

    def attach_op(self, count, read):
        load = np.load
        if read:
            def op(ref):
                return load(ref, mmap_mode="r+")[0]
        else:
            def op(ref):
                load(ref, mmap_mode="r+")
        return op

    def receive_op(self, ref, count):
        # The path: the shape is in the file.
        loads, load = pickle.loads, np.load

        def op(data):
            return load(loads(data), mmap_mode="r+")[0]
        return op, bytes(ForkingPickler.dumps(ref))

    def create_op(self, count, fill):
        open_memmap, unlink = np.lib.format.open_memmap, os.unlink
        f8 = np.float64

        def op(ref):
            a = open_memmap(ref, mode="w+", dtype=f8, shape=(count,))
            if fill:
                a[:] = 1
            del a
            unlink(ref)
        return op

    def list_op(self, directory):
        return list_npy


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


def time_ops(op, args):
    """Per-op times in ns of op(arg) for each arg of args, in order."""
    clock = time.perf_counter_ns
    times = [0] * len(args)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i, arg in enumerate(args):
            t0 = clock()
            op(arg)
            times[i] = clock() - t0
    finally:
        if gc_was_enabled:
            gc.enable()
    return times


def timed(op, args, warmup=()):
    """The answer for an in-process figure: the per-op times of op over
    args, after op over warmup untimed, and the median time of an empty op
    measured the same way (run.py subtracts it)."""
    for arg in warmup:
        op(arg)
    calibration = sorted(time_ops(_nothing, [None] * CALIBRATION_OPS))
    return {"times_ns": time_ops(op, args),
            "overhead_ns": calibration[len(calibration) // 2]}


def repeated(req, arg):
    """timed()'s args and warmup for the same arg every time."""
    return [arg] * req["n"], [arg] * req["warmup"]


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


def mapping_pmd_kb(a):
    """ShmemPmdMapped of the mapping that holds a's data, in kB."""
    addr = a.__array_interface__["data"][0]
    inside = False
    try:
        with open("/proc/self/smaps") as f:
            for line in f:
                first = line.split(None, 1)[0]
                if ":" not in first:    # "start-end perms ...": a mapping
                    lo, hi = (int(x, 16) for x in first.split("-"))
                    inside = lo <= addr < hi
                elif inside and first == "ShmemPmdMapped:":
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

    def make_small(self, count):
        """count small arrays, made now: their refs."""
        refs = [self.ref(f"-{i}") for i in range(count)]
        for ref in refs:
            self.lib.make(ref, SMALL)
        return refs

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for ref, path in self.made:
            if os.path.lexists(path):
                try:
                    self.lib.remove(ref)
                except Exception:
                    os.unlink(path)


@contextmanager
def kept_attached(lib, ref, count):
    """For the block, ref stays attached in this process (an array of it
    alive), as in a program that attached it earlier and still uses it."""
    a, release = lib.attach(ref, count)
    try:
        yield
    finally:
        del a
        release()


def fig_attach_again(lib, req, read=False):
    with Segments(lib, req) as seg:
        ref = seg.ref()
        lib.make(ref, SMALL)
        with kept_attached(lib, ref, SMALL):
            return timed(lib.attach_op(SMALL, read), *repeated(req, ref))


def fig_attach_again_read(lib, req):
    return fig_attach_again(lib, req, read=True)


def fig_attach_first(lib, req):
    """Each name attached once; the first warmup names untimed, then
    whatever the process keeps of them is dropped before the timed ones."""
    with Segments(lib, req) as seg:
        refs = seg.make_small(req["warmup"] + req["n"])
        op = lib.attach_op(SMALL, read=False)
        for ref in refs[:req["warmup"]]:
            op(ref)
        lib.forget()
        return timed(op, refs[req["warmup"]:])


def fig_receive(lib, req):
    with Segments(lib, req) as seg:
        ref = seg.ref()
        lib.make(ref, SMALL)
        with kept_attached(lib, ref, SMALL):
            op, data = lib.receive_op(ref, SMALL)
            return timed(op, *repeated(req, data))


def fig_create_delete(lib, req):
    with Segments(lib, req) as seg:
        op = lib.create_op(SMALL, fill=False)
        return timed(op, *repeated(req, seg.ref()))


def fig_create_fill(lib, req, probe=False):
    """With probe, also the ShmemPmdMapped of one more array made the same
    way, untimed, after the timed ones."""
    count = req["size"] // 8
    with Segments(lib, req) as seg:
        ref = seg.ref()
        answer = timed(lib.create_op(count, fill=True), *repeated(req, ref))
        if probe:
            answer["pmd_kb"] = lib.make(ref, count, probe=mapping_pmd_kb)
            lib.remove(ref)
        return answer


def fig_create_fill_advise(lib, req):
    return fig_create_fill(lib, req, probe=True)


def fig_create_fill_advise_reserved(lib, req):
    """create_fill_advise by those that reserve the space before the fill
    (SharedArray 4 always does; its figure is the same operation)."""
    if not (isinstance(lib, SharedArrayLib) and hasattr(lib.sa, "cache_clear")):
        raise Unsupported("does not reserve space before the fill")
    return fig_create_fill(lib, req, probe=True)


def fig_list(lib, req):
    op = lib.list_op(req["dir"])    # Unsupported before making anything
    with Segments(lib, req) as seg:
        seg.make_small(req["count"])
        check_listed(len(op(req["dir"])), req["count"])
        return timed(op, *repeated(req, req["dir"]))


def fig_list_cold(lib, req):
    lib.list_op(req["dir"])         # Unsupported before making anything
    with Segments(lib, req) as seg:
        seg.make_small(req["count"])
        return fresh_processes(req, "list", req["dir"], req["count"])


def fig_first_read(lib, req):
    count = req["size"] // 8
    with Segments(lib, req) as seg:
        ref, warm = seg.ref(), seg.ref("-warm")
        lib.make(ref, count)
        lib.make(warm, SMALL)
        return fresh_processes(req, "first_read", ref, count, warm)


def check_listed(found, count):
    if found < count:
        raise RuntimeError(f"list() found {found} of our {count} arrays")


def fresh_processes(req, what, *args):
    """The answer for a figure timed in req["n"] fresh processes, each
    running `_worker.py --child what KIND args...`."""
    times, pmd = [], []
    for _ in range(req["n"]):
        out = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--child", what,
             req["kind"], *map(str, args)],
            stdout=subprocess.PIPE, check=True, text=True).stdout
        child = json.loads(out.splitlines()[-1])
        times.append(child["ns"])
        if child.get("pmd_kb") is not None:
            pmd.append(child["pmd_kb"])
    answer = {"times_ns": times, "overhead_ns": 0}
    if pmd:
        answer["pmd_kb"] = min(pmd)
    return answer


FIGURES = {
    "attach_again": fig_attach_again,
    "attach_again_read": fig_attach_again_read,
    "attach_first": fig_attach_first,
    "receive": fig_receive,
    "create_delete": fig_create_delete,
    "create_fill": fig_create_fill,
    "create_fill_advise": fig_create_fill_advise,
    "create_fill_advise_reserved": fig_create_fill_advise_reserved,
    "list": fig_list,
    "list_cold": fig_list_cold,
    "first_read": fig_first_read,
}


# ---- fresh processes -------------------------------------------------------


def child_first_read(lib, ref, count, warm):
    """Time attach + one byte read per page (not the release, nor
    interpreter start-up, imports and first calls)."""
    count = int(count)
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
    return {"ns": ns, "pmd_kb": pmd_kb}


def child_list(lib, directory, count):
    """Time the first list() of this process (not start-up and imports)."""
    op = lib.list_op(directory)
    gc.disable()
    t0 = time.perf_counter_ns()
    found = op(directory)
    ns = time.perf_counter_ns() - t0
    check_listed(len(found), int(count))
    return {"ns": ns}


CHILDREN = {
    "first_read": (child_first_read, "REF COUNT WARM_REF"),
    "list": (child_list, "DIR COUNT"),
}


# ---- entry points ----------------------------------------------------------


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
    forms = [f"{{{'|'.join(KINDS)}}}"] + [
        f"--child {what} KIND {args}" for what, (_, args) in CHILDREN.items()]
    if len(argv) == 2 and argv[1] in KINDS:
        serve(argv[1])
    elif (len(argv) > 3 and argv[1] == "--child" and argv[2] in CHILDREN
          and argv[3] in KINDS
          and len(argv) - 4 == len(CHILDREN[argv[2]][1].split())):
        print(json.dumps(CHILDREN[argv[2]][0](KINDS[argv[3]](), *argv[4:])))
    else:
        sys.exit("usage: " + "\n       ".join(f"{argv[0]} {form}"
                                             for form in forms))


if __name__ == "__main__":
    main(sys.argv)
