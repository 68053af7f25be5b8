import os
import threading

import numpy as np
import pytest

import SharedArray as sa
from _helpers import (
    SHM_DIR,
    STRUCT_DTYPES,
    build_npy,
    header_text,
    needs,
    run_forked,
    shm_path,
    write_bytes,
)

pytestmark = needs("list")


def entries_by_name():
    return {e.name: e for e in sa.list()}


def test_list_returns_python_list_of_arraydesc(shm_name):
    name = shm_name()
    sa.create(name, (2, 3), "f4")
    result = sa.list()
    assert type(result) is list
    assert all(isinstance(e, sa.ArrayDesc) for e in result)
    mine = [e for e in result if e.name == name]
    assert len(mine) == 1
    sa.delete(name)


def test_list_entry_fields(shm_name):
    specs = {
        shm_name(): ((2, 3), np.dtype("<f4")),
        shm_name(): ((), np.dtype(">i8")),
        shm_name(): ((4, 0), np.dtype("S3")),
        shm_name(): ((5,), STRUCT_DTYPES["nested"]),
        shm_name(): ((2, 2), STRUCT_DTYPES["unicode-names"]),
    }
    for name, (shape, dtype) in specs.items():
        sa.create(name, shape, dtype)
    found = entries_by_name()
    for name, (shape, dtype) in specs.items():
        e = found[name]
        assert isinstance(e.name, str) and e.name == name
        assert isinstance(e.dtype, np.dtype) and e.dtype == dtype
        assert type(e.dims) is tuple and e.dims == shape
        assert type(e.nbytes) is int
        assert e.nbytes == np.zeros(shape, dtype).nbytes
        sa.delete(name)


def test_list_entry_unpacks_as_three_tuple(shm_name):
    name = shm_name()
    sa.create(name, (7,), "u2")
    (entry,) = [e for e in sa.list() if e.name == name]
    assert len(entry) == 3
    n, dtype, dims = entry
    assert (n, dtype, dims) == (name, np.dtype("u2"), (7,))
    assert entry[0] == name and entry[2] == (7,)
    assert entry.nbytes == 14
    sa.delete(name)


def test_list_names_are_attachable_bare_names(shm_name):
    names = [shm_name(), shm_name(), shm_name(suffix="-\u00e4\u00f6")]
    sa.create("shm://" + names[0], 1)
    sa.create("/" + names[1], 1)
    sa.create(names[2], 1)
    found = entries_by_name()
    for name in names:
        assert name in found
        assert sa.attach(found[name].name).shape == (1,)
        sa.delete(name)


def test_list_follows_create_and_delete(shm_name):
    name = shm_name()
    assert name not in entries_by_name()
    sa.create(name, 3)
    assert name in entries_by_name()
    sa.delete(name)
    assert name not in entries_by_name()


def test_list_includes_np_save_files(shm_name):
    name = shm_name()
    with open(shm_path(name), "wb") as fh:
        np.save(fh, np.zeros((2, 5), dtype=">c8"))
    e = entries_by_name()[name]
    assert e.dtype == np.dtype(">c8") and e.dims == (2, 5) and e.nbytes == 80
    sa.delete(name)


def test_list_long_header(shm_name):
    dtype = np.dtype([(f"field_{i:05d}", "<i2") for i in range(4000)])
    name = shm_name()
    sa.create(name, (3,), dtype)
    e = entries_by_name()[name]
    assert e.dtype == dtype and e.dims == (3,) and e.nbytes == 3 * 8000
    sa.delete(name)


def test_list_skips_non_arrays_and_damaged_arrays(shm_name):
    good = shm_name()
    sa.create(good, 10, "f8")
    text, empty, truncated, corrupt, fifo, directory, link, hugeshape = (
        shm_name() for _ in range(8)
    )
    write_bytes(shm_path(text), b"just some text\n")
    write_bytes(shm_path(empty), b"")
    sa.create(truncated, 100000, "u1")
    os.truncate(shm_path(truncated), 4096 + 100)
    write_bytes(shm_path(corrupt), b"\x93NUMPY\x01\x00\x20\x00{'descr': garbage}   \n")
    os.mkfifo(shm_path(fifo))
    os.mkdir(shm_path(directory))
    os.symlink("/etc/passwd", shm_path(link))
    write_bytes(shm_path(hugeshape),
                build_npy(header_text("<f8", (1 << 40,)), b"\0" * 64))
    found = entries_by_name()  # must not hang on the FIFO
    assert good in found
    for skipped in (text, empty, truncated, corrupt, fifo, directory, link, hugeshape):
        assert skipped not in found
    sa.delete(good)
    sa.delete(truncated)


def test_list_takes_no_arguments():
    with pytest.raises(TypeError):
        sa.list(1)
    with pytest.raises(TypeError):
        sa.list(path=SHM_DIR)


def test_list_while_arrays_come_and_go(shm_name):
    """Entries vanishing or appearing mid-scan are skipped or complete, and
    list() never raises."""
    names = [shm_name() for _ in range(4)]
    stop = threading.Event()
    errors = []

    def churn():
        try:
            k = 0
            while not stop.is_set():
                n = names[k % len(names)]
                sa.create(n, (k % 7 + 1, 3), "<i4")
                sa.delete(n)
                k += 1
        except BaseException as exc:  # noqa: BLE001  (the test reports it)
            errors.append(exc)

    t = threading.Thread(target=churn)
    t.start()
    try:
        for _ in range(200):
            for e in sa.list():
                if e.name in names:
                    assert e.dtype == np.dtype("<i4")
                    assert len(e.dims) == 2 and e.dims[1] == 3
                    assert e.nbytes == e.dims[0] * 12
    finally:
        stop.set()
        t.join()
    assert errors == []


def test_non_utf8_names_round_trip(shm_name):
    """A file name that is not UTF-8 comes from list() as os.fsdecode gives
    it (a lone surrogate per undecodable byte), and attach, info and delete
    take that str back (os.fsencode), as the name of the same file."""
    good = shm_name()
    sa.create(good, 3, "i2")[:] = 7
    raw = os.fsencode(shm_path(good)) + b"-\xff\xfe"
    os.rename(shm_path(good), raw)
    try:
        name = os.fsdecode(os.path.basename(raw))
        entry = next(e for e in sa.list() if e.name == name)
        assert entry.dims == (3,)
        assert sa.attach(entry.name).tolist() == [7, 7, 7]
        assert sa.info(entry.name).name == name
        assert sa.info("shm://" + name).dims == (3,)
        sa.delete(entry.name)
        assert not os.path.lexists(raw)
    finally:
        if os.path.lexists(raw):
            os.unlink(raw)


def test_list_sees_every_change_to_a_known_file(shm_name):
    """list() remembers what it read, and reads a file again whenever
    anything its entry shows or depends on changed: a header rewritten in
    place (same size), a chmod, a truncation, a new file under the name."""
    name = shm_name()
    path = shm_path(name)
    sa.create(name, 4, "<f8")

    def entry():
        found = [e for e in sa.list() if e.name == name]
        return found[0] if found else None

    assert entry().dtype == np.dtype("<f8")
    assert entry().dtype == np.dtype("<f8")        # now from memory
    # Same file, same size, another header: dtype and shape change.
    with open(path, "r+b") as f:
        f.write(build_npy(header_text("<i4", (8,)), align=os.sysconf("SC_PAGESIZE")))
    e = entry()
    assert (e.dtype, e.dims) == (np.dtype("<i4"), (8,))
    os.chmod(path, 0o640)
    assert entry().mode == 0o640
    os.truncate(path, 100)                         # data cut off: invalid
    assert entry() is None
    os.unlink(path)
    sa.create(name, 3, "u1")                       # a new file, same name
    e = entry()
    assert (e.dtype, e.dims) == (np.dtype("u1"), (3,))
    sa.delete(name)
    assert entry() is None


def _legacy_bytes(arr):
    """A SharedArray 3.x segment of arr (NumPy 2's 64 dimensions)."""
    import struct

    data = np.ascontiguousarray(arr).tobytes()
    dims = list(arr.shape) + [0] * (64 - arr.ndim)
    return data + struct.pack("=16sQiii64q", b"[SharedArray]", len(data),
                              arr.dtype.num, arr.dtype.itemsize, arr.ndim,
                              *dims)


def test_list_of_many_files_matches_info(shm_name):
    """Enough files for list() to probe on two threads and keep some
    descriptors open until the entry is built (a 3.x segment whose data is
    a .npy image, a structured dtype): every entry is what info() says,
    on the first call, on a call that finds them unchanged, and on one
    after files came and went (the directory's order changed)."""
    import io

    blob = io.BytesIO()
    np.save(blob, np.arange(6, dtype="<i4"))
    blob = np.frombuffer(blob.getvalue(), "u1")
    names, skipped = [], []
    for i in range(600):
        name = shm_name()
        kind = i % 6
        if kind == 0:
            write_bytes(shm_path(name), _legacy_bytes(blob))
        elif kind == 1:
            sa.create(name, (i % 5, 2), STRUCT_DTYPES["nested"])
        elif kind == 2:
            write_bytes(shm_path(name), b"not an array %d\n" % i)
            skipped.append(name)
        elif kind == 3:
            sa.create(name, 100, "u1")
            os.truncate(shm_path(name), 4096 + 10)
            skipped.append(name)
        else:
            sa.create(name, (i, 1), "<f8" if kind == 4 else ">i2")
        names.append(name)
    wanted = {n for n in names if n not in skipped}

    def check():
        found = {n: e for n, e in entries_by_name().items() if n in names}
        assert set(found) == wanted
        for name, e in found.items():
            assert tuple(e) == tuple(sa.info(name))
            assert (e.order, e.format, e.mode, e.nbytes) == (
                sa.info(name).order, sa.info(name).format,
                sa.info(name).mode, sa.info(name).nbytes)
        assert found[names[6]].format == "sharedarray3"
        assert found[names[6]].dtype == np.uint8

    check()
    check()
    for name in names[::7]:
        os.unlink(shm_path(name))
        wanted.discard(name)
    for name in names[3::7]:
        os.unlink(shm_path(name))
        sa.create(name, 3, "u2")  # a new file, in a new place
        wanted.add(name)
    check()
    check()
    for name in names:
        if os.path.lexists(shm_path(name)):
            os.unlink(shm_path(name))


def test_list_keeps_few_descriptors_open(shm_name):
    """Files whose entries need their descriptor (a structured dtype) are
    probed ahead of the entries being built, on another thread too, yet
    list() keeps few open at a time: with little room for descriptors it
    still finds every file (one it would have to keep open beyond its
    budget is probed again when its entry is built)."""
    import resource

    names = [shm_name() for _ in range(1500)]
    for name in names:
        sa.create(name, 2, STRUCT_DTYPES["nested"])

    def setup():
        room = len(os.listdir("/proc/self/fd")) + 80
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (room, hard))

    def missed():
        found = {e.name for e in sa.list()}
        return sorted(set(names) - found)

    assert run_forked(missed, setup=setup) == ("ok", [])
    assert run_forked(missed, setup=setup) == ("ok", [])
