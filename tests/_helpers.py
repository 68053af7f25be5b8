"""Helpers shared by the SharedArray tests (not a test module).

Each helper is written once, here, and imported wherever it is needed.  The
checks of files, headers and mappings work from outside the library: they
read segments as plain files and parse .npy headers themselves
(ast.literal_eval), so the tests do not rely on SharedArray to check
SharedArray.  The worker functions at the bottom run in child processes
started with the 'spawn' context, so they must live in an importable module.
"""

import ast
import contextlib
import ctypes
import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import uuid

import numpy as np

SHM_DIR = "/dev/shm"  # where shm:// names live; never spell it out in a test
PREFIX = "sa-test-"
PAGE = os.sysconf("SC_PAGESIZE")
IS_ROOT = os.geteuid() == 0
NOBODY = 65534  # the uid and gid tests drop to when run as root
# NPY_MAXDIMS of the NumPy we run on: 32 before 2.0, 64 since.
MAXDIMS = 64 if int(np.__version__.split(".")[0]) >= 2 else 32
MAGIC = b"\x93NUMPY"


def _features():
    from SharedArray import _core

    # Builds from before the portable backend were all linux builds.
    return dict(getattr(_core, "_features", None) or {
        "backend": "linux", "list": True, "birth_times": True, "claims": True,
        "o_tmpfile": True, "huge_pages": True, "fallocate": True})


# What this build of SharedArray can do (meson.build decides; see the
# README's "Platforms").  The suite runs against both backends: a test of a
# Linux-only feature says so with @needs(...) and is skipped, with that
# reason, by the portable POSIX backend.
FEATURES = _features()
POSIX_BACKEND = FEATURES["backend"] == "posix"
_NEEDS = {
    "list": "list() needs /dev/shm as a directory (linux backend); the "
            "portable backend raises NotImplementedError",
    "birth_times": "the mapping cache needs birth times (statx); the "
                   "portable backend on Linux has none, so it never caches",
    "claims": "creators take turns through abstract-socket claims (linux "
              "backend only)",
    "o_tmpfile": "files are made unnamed with O_TMPFILE (linux backend "
                 "only); elsewhere a SIGKILL can leave a hidden temporary",
    "huge_pages": "MADV_HUGEPAGE, MADV_POPULATE_WRITE and statfs magic "
                  "numbers (linux backend only)",
    "fallocate": "fallocate(2) of sparse files at attach (linux backend only)",
}


def needs(feature):
    """Marks a test that needs a feature of the linux backend."""
    import pytest

    return pytest.mark.skipif(not FEATURES[feature], reason=_NEEDS[feature])


def list_entry(name):
    """The entry sa.list() gives for name (None if it is not listed); where
    this build cannot list, sa.info(name), which shows the same fields."""
    import SharedArray as sa

    if not FEATURES["list"]:
        return sa.info(name)
    return next((e for e in sa.list() if e.name == name), None)


def list_names():
    """The names sa.list() gives, or [] where this build cannot list (a
    name that must not be listed then trivially is not)."""
    import SharedArray as sa

    return [e.name for e in sa.list()] if FEATURES["list"] else []


def own_prefix():
    """Every shm name this test run makes starts with this (child processes
    are handed their names by the parent), so a run never mistakes another,
    concurrent run's segments for its own."""
    return f"{PREFIX}{os.getpid()}-"


def unique_shm_name():
    return f"{own_prefix()}{uuid.uuid4().hex[:8]}"


def shm_path(name):
    """The /dev/shm path for a shm name ('NAME', '/NAME' or 'shm://NAME')."""
    name = name.removeprefix("shm://")
    return os.path.join(SHM_DIR, name.lstrip("/"))


def array_path(name):
    """The file behind any array name: PATH for 'file://PATH', else the
    /dev/shm path of a shm name."""
    if name.startswith("file://"):
        return name[len("file://"):]
    return shm_path(name)


def shm_entries(prefix):
    """The names in /dev/shm that start with prefix, sorted."""
    return sorted(e for e in os.listdir(SHM_DIR) if e.startswith(prefix))


def remove_shm_entries(prefix):
    """Removes whatever /dev/shm holds under names that start with prefix;
    returns those names (sorted), for a test to assert on after cleaning."""
    left = shm_entries(prefix)
    for entry in left:
        remove_path(os.path.join(SHM_DIR, entry))
    return left


def remove_path(path):
    """Remove whatever is at path (file, symlink, FIFO, directory tree)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    import stat

    if stat.S_ISDIR(st.st_mode):
        import shutil

        shutil.rmtree(path, ignore_errors=True)
    else:
        os.unlink(path)


def read_header(path):
    """Parse a .npy file's header independently of SharedArray and NumPy.

    Returns dict(major, minor, data_offset, header_text (bytes), header (the
    literal_eval'd dict)).
    """
    with open(path, "rb") as f:
        head = f.read(12)
        assert head[:6] == MAGIC, f"{path} has no .npy magic"
        major, minor = head[6], head[7]
        if major == 1:
            (hlen,) = struct.unpack("<H", head[8:10])
            prefix = 10
        else:
            (hlen,) = struct.unpack("<I", head[8:12])
            prefix = 12
        f.seek(prefix)
        text = f.read(hlen)
    assert len(text) == hlen, "file ends inside its header"
    decoded = text.decode("utf-8" if major >= 3 else "latin1")
    return {
        "major": major,
        "minor": minor,
        "data_offset": prefix + hlen,
        "header_text": text,
        "header": ast.literal_eval(decoded),
    }


def build_npy(header, data=b"", version=1, align=64, raw_prefix=None):
    """Bytes of a hand-made .npy file.

    header is the header text (str or bytes); it is padded with spaces and a
    newline so that the data starts at a multiple of align (align=1: no
    padding beyond the newline).
    """
    if isinstance(header, str):
        header = header.encode("utf-8" if version >= 3 else "latin1")
    prefix_len = 10 if version == 1 else 12
    total = prefix_len + len(header) + 1
    pad = (-total) % align
    header = header + b" " * pad + b"\n"
    if raw_prefix is not None:
        return raw_prefix + header + data
    if version == 1:
        prefix = MAGIC + bytes([1, 0]) + struct.pack("<H", len(header))
    else:
        prefix = MAGIC + bytes([version, 0]) + struct.pack("<I", len(header))
    return prefix + header + data


def header_text(descr, shape, fortran=False):
    return f"{{'descr': {descr!r}, 'fortran_order': {fortran!r}, 'shape': {tuple(shape)!r}, }}"


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)


def random_bytes(n, seed=0):
    return np.random.default_rng(seed).bytes(n)


def fill_random(arr, seed=0):
    """Overwrite arr's memory with random bytes; returns them."""
    data = random_bytes(arr.nbytes, seed)
    if arr.nbytes:
        ctypes.memmove(arr.ctypes.data, data, arr.nbytes)
    return data


def random_array(shape, dtype, order="C", seed=0):
    """An in-memory array of raw random bytes (NaNs, odd bools and all)."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
    flat = np.frombuffer(random_bytes(n * dtype.itemsize, seed), dtype=dtype)
    arr = flat.reshape(shape)
    return np.asfortranarray(arr) if order == "F" else np.ascontiguousarray(arr)


def raw_memory(arr):
    """The bytes of a contiguous array's memory, padding bytes included."""
    assert arr.flags.c_contiguous or arr.flags.f_contiguous
    return ctypes.string_at(arr.ctypes.data, arr.nbytes) if arr.nbytes else b""


def assert_same_array(got, want):
    """Same dtype (==), shape and bytes (exact: NaN payloads, struct padding).

    Contiguous arrays in the same memory order are compared byte for byte;
    others element by element through tobytes().
    """
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    if (got.flags.c_contiguous and want.flags.c_contiguous) or (
        got.flags.f_contiguous and want.flags.f_contiguous
    ):
        assert raw_memory(got) == raw_memory(want)
    else:
        assert got.tobytes() == want.tobytes()


def _vma_range(line):
    lo, hi = line.split()[0].split("-")
    return int(lo, 16), int(hi, 16)


def vmas_at(addr, ino=None):
    """Lines of /proc/self/maps for mappings that contain addr and, if ino is
    given, map that inode (a freed range may be reused by other memory, and
    the path shown is not always the file's name, so match the inode)."""
    with open("/proc/self/maps") as f:
        lines = [line for line in f if _vma_range(line)[0] <= addr < _vma_range(line)[1]]
    if ino is not None:
        lines = [line for line in lines if int(line.split()[4]) == ino]
    return lines


def smaps_of(addr):
    """The fields of /proc/self/smaps (name -> first word of the value, e.g.
    'Locked' -> '0') for the mapping that holds addr."""
    fields, inside = {}, False
    with open("/proc/self/smaps") as f:
        for line in f:
            if not line.strip():
                continue
            head = line.split()[0]
            if "-" in head and ":" not in head:
                lo, hi = _vma_range(line)
                inside = lo <= addr < hi
            elif inside:
                key, value = line.split(":", 1)
                fields[key] = value.split()[0]
    assert fields, f"no mapping at {addr:#x}"
    return fields


def smaps_field_kb(addr, field):
    """A kB field (e.g. 'Locked') of /proc/self/smaps for the VMA holding addr."""
    fields = smaps_of(addr)
    assert field in fields, f"no field {field} for the VMA holding {addr:#x}"
    return int(fields[field])


def free_bytes(path):
    """Free space on the filesystem holding path, in bytes."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def under_sanitizer():
    """True under ASan, TSan or valgrind (seen in this process's mappings):
    their allocators keep freed memory and map memory of their own, and
    everything runs many times slower."""
    with open("/proc/self/maps") as f:
        text = f.read()
    return any(lib in text for lib in ("libasan", "vgpreload", "libtsan"))


# ----------------------------------------------------------------------
# The library, from the outside


def is_shared(a):
    """a's memory is a SharedArray mapping (not a copy)."""
    import SharedArray as sa

    base = a.base
    while isinstance(base, np.ndarray):
        base = base.base
    return isinstance(base, sa.Mapping)


def drop_cache():
    """Let go of mappings that SharedArray's per-process mapping cache may
    keep after the arrays are gone (on a version without the cache there is
    nothing to drop).  Needed before unmounting a filesystem, and wherever
    a test counts mappings or space held."""
    import SharedArray as sa

    clear = getattr(sa, "cache_clear", None)
    if clear is not None:
        clear()


def assert_refused(name, exc=ValueError):
    """attach (read-write and read-only) and info of name each raise exc,
    naming name in the message or as the OSError's filename.  Returns the
    three exceptions, for checks of their own."""
    import pytest

    import SharedArray as sa

    caught = []
    for call in (lambda: sa.attach(name), lambda: sa.attach(name, ro=True),
                 lambda: sa.info(name)):
        with pytest.raises(exc) as info:
            call()
        assert (name in str(info.value)
                or getattr(info.value, "filename", None) == name), repr(info.value)
        caught.append(info.value)
    return caught


def outcome(func):
    """What func() did, as JSON: "ok", or the exception as [class name,
    errno, filename] for an OSError, [class name, None, message (at most
    300 characters)] for any other."""
    try:
        func()
    except OSError as exc:
        return [type(exc).__name__, exc.errno, exc.filename]
    except Exception as exc:  # noqa: BLE001  (reported, whatever it is)
        return [type(exc).__name__, None, str(exc)[:300]]
    return "ok"


# ----------------------------------------------------------------------
# Other processes


def run_python(code, *args, timeout=120):
    """code (dedented) in a fresh interpreter, args as sys.argv[1:]: nothing
    inherited.  Asserts that it exits 0; returns its stdout."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )
    assert proc.returncode == 0, f"exit status {proc.returncode}: {proc.stderr}"
    return proc.stdout


def run_forked(func, setup=None, uid=None, between=None):
    """func() in a forked child, which inherits this process as it is.

    The child runs setup() first, if given, then drops to uid and gid `uid`,
    if given.  With between, func is called as func(sync): sync() in the
    child hands over to the parent, which runs between() and then lets the
    child go on.  Returns ("ok", func's JSON-able result), ("raised", repr
    of the exception) or ("signal", signal name) if the child was killed:
    anything that could die of SIGBUS runs here.
    """
    rr, rw = os.pipe()  # the result
    if between is not None:
        sr, sw = os.pipe()  # child -> parent: at the sync point
        gr, gw = os.pipe()  # parent -> child: go on
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        status = 0
        try:
            os.close(rr)
            if setup is not None:
                setup()
            if uid is not None:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            if between is None:
                out = ["ok", func()]
            else:
                os.close(sr)
                os.close(gw)

                def sync():
                    os.write(sw, b"s")
                    if os.read(gr, 1) != b"g":
                        raise RuntimeError("the parent did not let the child go on")

                out = ["ok", func(sync)]
        except BaseException as exc:  # noqa: BLE001  (reported to the parent)
            out = ["raised", repr(exc)]
            status = 1
        try:
            os.write(rw, json.dumps(out).encode())
        finally:
            os._exit(status)
    os.close(rw)
    try:
        if between is not None:
            os.close(sw)
            os.close(gr)
            try:
                if os.read(sr, 1) == b"s":  # b"": the child ended without sync()
                    try:
                        between()
                    finally:
                        with contextlib.suppress(OSError):
                            os.write(gw, b"g")
            finally:
                os.close(sr)
                os.close(gw)
        chunks = []
        while chunk := os.read(rr, 65536):
            chunks.append(chunk)
    finally:
        os.close(rr)
        _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return ("signal", signal.Signals(os.WTERMSIG(status)).name)
    return tuple(json.loads(b"".join(chunks) or b'["raised", "no result"]'))


def in_child(func, uid=None):
    """func() in a forked child (as uid and gid `uid` if given); returns its
    JSON-able result, or fails with the child's exception or fatal signal."""
    kind, value = run_forked(func, uid=uid)
    assert kind != "signal", f"child killed by signal {value}"
    assert kind == "ok", f"child failed: {value}"
    return value


def as_nobody(func):
    """func() in a forked child running as uid and gid NOBODY (root only)."""
    return in_child(func, uid=NOBODY)


# The dtype matrix: plain and structured dtypes, as (id, dtype).
PLAIN_DTYPES = [
    "?", "i1", "u1", "<i2", ">i2", "<u2", "<i4", ">i4", "<u4", "<i8", ">u8",
    "<f2", ">f2", "<f4", ">f4", "<f8", ">f8", np.longdouble, "<c8", ">c16",
    np.clongdouble, "S1", "S7", "<U1", "<U5", ">U3", "V1", "V13",
    "<M8[ns]", "<M8[D]", ">M8[s]", "<M8", "<m8[10s]", "<m8[us]", "<M8[2h]",
]

STRUCT_DTYPES = {
    "struct": np.dtype([("a", "<i4"), ("b", ">f8"), ("c", "S3")]),
    "nested": np.dtype([("p", [("x", "<f4"), ("y", ">f4")]), ("id", "<u8")]),
    "subarray-field": np.dtype([("m", "<f8", (2, 3)), ("k", "u1")]),
    "aligned": np.dtype([("a", "u1"), ("b", "<f8"), ("c", "<i2")], align=True),
    "unicode-names": np.dtype([("temp\u00e9rature", "<f4"), ("\u6e29\u5ea6", "<i2")]),
    "titles": np.dtype({"names": ["a", "b"], "formats": ["<i4", "<f2"],
                        "titles": ["Title A", None]}),
    "odd-field-names": np.dtype([("it's", "<i4"), ('dq"x', "u1"),
                                 ("back\\slash", "<f4"), ("new\nline", "i1")]),
    "datetime-fields": np.dtype([("t", "<M8[ms]"), ("d", "<m8[10s]")]),
    "gaps": np.dtype({"names": ["a", "b"], "formats": ["<i4", ">i4"],
                      "offsets": [0, 8], "itemsize": 16}),
    "void-and-unicode-fields": np.dtype([("v", "V5"), ("u", ">U2"), ("b", "?")]),
    "deep": np.dtype([("l1", [("l2", [("l3", [("x", "<i2", (2,))])])])]),
}


def all_dtypes():
    out = [(str(np.dtype(d)), np.dtype(d)) for d in PLAIN_DTYPES]
    out += list(STRUCT_DTYPES.items())
    return out


# ----------------------------------------------------------------------
# Workers for multiprocessing (spawn).  Each reports through a queue.


def worker_write(name, value, q):
    import SharedArray as sa

    try:
        a = sa.attach(name)
        a[...] = value
        q.put(("ok", float(a.sum())))
    except BaseException as exc:  # noqa: BLE001  (report, never hang the parent)
        q.put(("error", repr(exc)))


def worker_write_row(name, row, q):
    import SharedArray as sa

    try:
        a = sa.attach(name)
        a[row, :] = row + 1
        q.put(("ok", row))
    except BaseException as exc:  # noqa: BLE001  (report, never hang the parent)
        q.put(("error", repr(exc)))


def worker_read_ro(name, q):
    import SharedArray as sa

    try:
        a = sa.attach(name, ro=True)
        values = a.tolist()
        try:
            a[...] = -1
        except ValueError:
            refused = True
        else:
            refused = False
        q.put(("ok", values, refused, a.flags.writeable))
    except BaseException as exc:  # noqa: BLE001  (report, never hang the parent)
        q.put(("error", repr(exc)))


def worker_race_attacher(name, rounds, base_len, dtype, q, stop):
    """Attach name over and over while the parent creates and deletes it.

    Round r has shape (base_len + r,).  Anything but FileNotFoundError or a
    complete, zero-filled array of the expected shape and dtype is a failure.
    """
    import SharedArray as sa

    dtype = np.dtype(dtype)
    seen = -1
    attempts = 0
    try:
        while seen < rounds - 1 and not stop.is_set():
            attempts += 1
            try:
                a = sa.attach(name, ro=True)
            except FileNotFoundError:
                continue
            r = a.shape[0] - base_len if a.ndim == 1 else -1
            if a.dtype != dtype or a.ndim != 1 or not 0 <= r < rounds:
                q.put(("bad", f"attached {a.dtype} {a.shape}"))
                return
            # The last page is the one a partial create would lack.
            if a[-1] != 0 or a[: 4096].any() or a[-4096:].any():
                q.put(("bad", f"round {r}: array not zero-filled"))
                return
            del a
            if r > seen:
                seen = r
                q.put(("seen", r))
        q.put(("done", attempts))
    except BaseException as exc:  # noqa: BLE001  (report, never hang the parent)
        q.put(("bad", repr(exc)))
