"""Space on the filesystem: who gets it, when it is reserved, and never SIGBUS.

Each test mounts a small private tmpfs (root only) so that "full" is cheap
and exact:

1. Racing creators of one name: exactly one succeeds, every other one gets
   FileExistsError (not ENOSPC because the racers' reservations did not fit
   side by side).
2. create over an existing name is refused before anything is reserved.
3. A tmpfs out of inodes: an existing name is still FileExistsError; a new
   name is ENOSPC and leaves nothing behind.
4. Sparse files (written by NumPy, by truncate, or left by SharedArray 3.x)
   bigger than the free space: a writer never dies of SIGBUS.
5. attach maps the header and the data only, not what follows them.

Anything that could die of SIGBUS runs in a forked child, whose exit status
is checked; the tmpfs is unmounted whatever happens.
"""

import errno
import multiprocessing as mp
import os
import resource
import signal
import struct

import numpy as np
import pytest

import SharedArray as sa
from _helpers import (
    IS_ROOT,
    PAGE,
    build_npy,
    drop_cache,
    free_bytes,
    header_text,
    needs,
    run_forked,
    run_python,
    vmas_at,
)

MiB = 1 << 20

pytestmark = pytest.mark.skipif(
    not IS_ROOT, reason="needs root to mount a private tmpfs")


# ----------------------------------------------------------------------
# Helpers


def legacy_trailer(shape, dtype, maxdims=64):
    """The trailer SharedArray 3.x put after the raw data (see
    test_legacy.py): magic, data size, type number, item size, ndim, dims."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    dims = list(shape) + [0] * (maxdims - len(shape))
    return struct.pack("=16sQiii%dq" % maxdims, b"[SharedArray]", nbytes,
                       dtype.num, dtype.itemsize, len(shape), *dims)


# Sparse segments of n bytes of uint8 data, three ways.  Each returns the
# offset just past the data (what must be backed by blocks for writes).


def sparse_open_memmap(path, n):
    m = np.lib.format.open_memmap(path, mode="w+", dtype="u1", shape=(n,))
    end = m.offset + n
    del m  # nothing touched: NumPy only wrote the header and the last byte
    return end


def sparse_truncate(path, n):
    head = build_npy(header_text("|u1", (n,)))
    with open(path, "wb") as f:
        f.write(head)
    os.truncate(path, len(head) + n)
    return len(head) + n


def sparse_sharedarray3(path, n):
    with open(path, "wb") as f:
        f.truncate(n)
        f.seek(n)
        f.write(legacy_trailer((n,), "u1"))
    return n


SPARSE = {
    "open_memmap": sparse_open_memmap,
    "truncate": sparse_truncate,
    "sharedarray3": sparse_sharedarray3,
}


# ----------------------------------------------------------------------
# 1. Racing creators


RACE_BYTES = 40 * MiB  # two of them do not fit in the 64 MiB tmpfs
RACE_ROUNDS = 20


def racer(uri, rounds, barrier, results):
    """One racer: each round, wait for everyone, create, report, wait."""
    for r in range(rounds):
        barrier.wait(timeout=120)
        try:
            a = sa.create(uri, (RACE_BYTES,), "u1")
        except OSError as exc:
            out = [type(exc).__name__, exc.errno]
        except BaseException as exc:
            out = [repr(exc), None]
        else:
            del a  # give the memory back before the parent deletes the name
            out = ["ok", None]
        drop_cache()
        results.put((r, out))
        barrier.wait(timeout=120)


@pytest.mark.parametrize("racers", [2, 3, 4])
@needs("claims")
def test_racing_creators_one_wins_others_file_exists(tmpfs, racers):
    """Contract 1: racers create the same 40 MiB name on a 64 MiB tmpfs at
    the same moment, 20 rounds: in every round exactly one succeeds and all
    the others get FileExistsError."""
    mnt = tmpfs("size=64M")
    path = str(mnt / "x.npy")
    uri = "file://" + path
    full = free_bytes(mnt)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(racers + 1)
    results = ctx.Queue()
    procs = [ctx.Process(target=racer, args=(uri, RACE_ROUNDS, barrier, results))
             for _ in range(racers)]
    for p in procs:
        p.start()
    rounds = []
    try:
        for r in range(RACE_ROUNDS):
            barrier.wait(timeout=120)  # go
            got = [results.get(timeout=120) for _ in range(racers)]
            assert all(rr == r for rr, _ in got), got
            rounds.append(sorted(out for _, out in got))
            if os.path.exists(path):
                sa.delete(uri)
            assert os.listdir(mnt) == [], f"round {r} left {os.listdir(mnt)}"
            assert free_bytes(mnt) == full, (
                f"round {r}: {(full - free_bytes(mnt)) // MiB} MiB still held")
            barrier.wait(timeout=120)  # next round
        for p in procs:
            p.join(60)
            assert p.exitcode == 0
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join()
    want = sorted([["ok", None]] + [["FileExistsError", errno.EEXIST]] * (racers - 1))
    bad = {r: outs for r, outs in enumerate(rounds) if outs != want}
    assert not bad, (
        f"{len(bad)} of {RACE_ROUNDS} rounds did not end with one winner and "
        f"{racers - 1} FileExistsError: {bad}")


# ----------------------------------------------------------------------
# 2. create over an existing name


@pytest.mark.parametrize("existing_mib", [8, 40])
def test_create_over_existing_name_fails_before_reserving(tmpfs, existing_mib):
    """Contract 2: create over an existing name raises FileExistsError,
    whether or not the size asked for would fit, and reserves nothing.

    "Reserves nothing" is made observable with RLIMIT_FSIZE: in a child
    whose file size limit is 1 MiB and in which SIGXFSZ has its default
    action (Python ignores it), growing any file past 1 MiB kills the child
    with SIGXFSZ.  A create that finds the name taken before reserving
    never gets there."""
    mnt = tmpfs("size=64M")
    path = str(mnt / "x.npy")
    uri = "file://" + path
    a = sa.create(uri, (existing_mib * MiB,), "u1")
    try:
        a[::PAGE] = 9
        free = free_bytes(mnt)
        # More than is free, much more, and (in the child) an amount that
        # would fit in the free space.
        for nbytes in (free + MiB, 1 << 30):
            with pytest.raises(FileExistsError) as info:
                sa.create(uri, (nbytes,), "u1")
            assert info.value.errno == errno.EEXIST
            assert info.value.filename == uri

        def limit_file_size():
            resource.setrlimit(resource.RLIMIT_FSIZE, (MiB, MiB))
            signal.signal(signal.SIGXFSZ, signal.SIG_DFL)

        def create_over_it():
            out = []
            for nbytes in (16 * MiB, 1 << 30):
                try:
                    sa.create(uri, (nbytes,), "u1")
                    out.append("created")
                except OSError as exc:
                    out.append([type(exc).__name__, exc.errno])
            return out

        got = run_forked(create_over_it, setup=limit_file_size)
        assert got == ("ok", [["FileExistsError", errno.EEXIST]] * 2), (
            "create over an existing name started reserving space "
            f"(SIGXFSZ = it grew a file past 1 MiB): {got}")
        assert os.listdir(mnt) == ["x.npy"]
        assert free_bytes(mnt) == free
        assert os.stat(path).st_size == PAGE + existing_mib * MiB
        assert (a[::PAGE] == 9).all() and a.sum() == 9 * (existing_mib * MiB // PAGE)
    finally:
        del a
    sa.delete(uri)


# ----------------------------------------------------------------------
# 3. Out of inodes


def test_out_of_inodes_existing_name_is_file_exists_new_name_is_enospc(tmpfs):
    """Contract 3: on a tmpfs with no inode left, create over an existing
    array is FileExistsError (not ENOSPC); a new name is ENOSPC and leaves
    nothing behind."""
    mnt = tmpfs("size=8M,nr_inodes=8")
    uri = "file://" + str(mnt / "x.npy")
    a = sa.create(uri, (100,), "<i4")
    try:
        a[:] = np.arange(100)
        n = 0
        with pytest.raises(OSError) as info:
            while True:
                open(mnt / f"filler{n}", "x").close()
                n += 1
        assert info.value.errno == errno.ENOSPC
        assert os.statvfs(mnt).f_ffree == 0
        before = sorted(os.listdir(mnt))
        free = free_bytes(mnt)

        with pytest.raises(FileExistsError) as info:
            sa.create(uri, (100,), "<i4")
        assert info.value.errno == errno.EEXIST
        assert info.value.filename == uri

        new = "file://" + str(mnt / "new.npy")
        with pytest.raises(OSError) as info:
            sa.create(new, (100,), "<i4")
        assert info.value.errno == errno.ENOSPC
        assert info.value.filename == new
        assert sorted(os.listdir(mnt)) == before
        assert free_bytes(mnt) == free
        assert a.tolist() == list(range(100))
    finally:
        del a


# ----------------------------------------------------------------------
# 4. Sparse files never SIGBUS


@pytest.mark.parametrize("make", list(SPARSE))
def test_sparse_file_bigger_than_free_space_never_sigbus(tmpfs, make):
    """Contract 4: a sparse segment of 16 MiB on an 8 MiB tmpfs.  A child
    attaches it read-write and writes every page: either attach raises
    OSError(ENOSPC), or every write works; never SIGBUS.  attach(ro=True)
    of the file succeeds."""
    mnt = tmpfs("size=8M")
    path = str(mnt / "sparse.npy")
    uri = "file://" + path
    n = 16 * MiB
    SPARSE[make](path, n)
    size = os.stat(path).st_size

    def write_every_page():
        try:
            a = sa.attach(uri)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                return "ENOSPC"
            raise
        a[::PAGE] = 1  # one element on every page of the data
        a[-1] = 1
        return "written"

    got = run_forked(write_every_page)
    assert got in {("ok", "ENOSPC"), ("ok", "written")}, (
        f"attach(rw) of a sparse file that cannot be backed: {got}")
    assert os.stat(path).st_size == size
    if got == ("ok", "written"):
        a = sa.attach(uri, ro=True)
        try:
            assert int(a[::PAGE].sum()) + int(a[-1]) == n // PAGE + 1
        finally:
            del a

    def attach_read_only():
        a = sa.attach(uri, ro=True)
        # Only the first page: on tmpfs, reading a hole through a shared
        # mapping allocates a page, so reading all 16 MiB here would itself
        # die of SIGBUS (kernel behaviour, whatever maps the file).
        return [list(a.shape), a.dtype.str, a.flags.writeable, int(a[0])]

    got = run_forked(attach_read_only)
    assert got[0] == "ok", f"attach(ro=True) of the sparse file: {got}"
    assert got[1][:3] == [[n], "|u1", False]


@pytest.mark.parametrize("make", list(SPARSE))
def test_sparse_file_that_fits_is_backed_by_attach(tmpfs, make):
    """Contract 4: a sparse segment that fits in the free space: attach(rw)
    succeeds and afterwards every block of the data is allocated (so no
    later write can fail)."""
    mnt = tmpfs("size=8M")
    path = str(mnt / "sparse.npy")
    uri = "file://" + path
    n = 2 * MiB
    end = SPARSE[make](path, n)
    assert os.stat(path).st_blocks * 512 < end  # sparse to begin with
    a = sa.attach(uri)
    try:
        blocks = os.stat(path).st_blocks * 512
        assert blocks >= end, (
            f"after attach(rw) only {blocks} of the {end} bytes up to the end "
            "of the data are allocated")
        a[::PAGE] = 3
        assert int(a.sum()) == 3 * (n // PAGE)
    finally:
        del a


# ----------------------------------------------------------------------
# 5. attach maps only the header and the data


TAIL = 60 * MiB


def tiny_npy_with_tail(path):
    data = np.array([3.25], "<f8").tobytes()
    head = build_npy(header_text("<f8", (1,)), data)
    with open(path, "wb") as f:
        f.write(head)
    os.truncate(path, len(head) + TAIL)


def tiny_sharedarray3_with_gap(path):
    """8 bytes of data at offset 0, a 60 MiB hole, the 3.x trailer at the
    end (3.x accepts data plus trailer shorter than the file)."""
    with open(path, "wb") as f:
        f.write(np.array([3.25], "<f8").tobytes())
        f.truncate(TAIL)
        f.seek(TAIL)
        f.write(legacy_trailer((1,), "<f8"))


@pytest.mark.parametrize("make", [tiny_npy_with_tail, tiny_sharedarray3_with_gap],
                         ids=["npy", "sharedarray3"])
def test_attach_maps_only_header_and_data(tmpfs, make):
    """Contract 5: an 8-byte array followed by (or, for 3.x, separated from
    its trailer by) a 60 MiB sparse stretch: attach maps a few pages, not
    60 MiB, and mlock/munlock through the Mapping allocate none of it."""
    mnt = tmpfs("size=96M")
    path = str(mnt / "tail.npy")
    uri = "file://" + path
    make(path)
    st = os.stat(path)
    blocks = st.st_blocks * 512
    free = free_bytes(mnt)

    a = sa.attach(uri)
    try:
        assert a.tolist() == [3.25]
        vmas = vmas_at(a.base.addr, st.st_ino)
        assert len(vmas) == 1, vmas
        lo, hi = (int(x, 16) for x in vmas[0].split()[0].split("-"))
        assert hi - lo <= 4 * PAGE, (
            f"attach mapped {(hi - lo) // 1024} KiB of the file for 8 bytes "
            f"of data: {vmas[0].strip()}")
    finally:
        del a

    def lock_and_unlock():
        a = sa.attach(uri)
        a.base.mlock()
        a.base.munlock()
        return a.tolist()

    got = run_forked(lock_and_unlock)
    assert got == ("ok", [3.25]), got
    grew = os.stat(path).st_blocks * 512 - blocks
    used = free - free_bytes(mnt)
    assert grew <= 4 * PAGE and used <= 4 * PAGE, (
        f"mlock/munlock allocated {grew // 1024} KiB of the file "
        f"({used // 1024} KiB of the tmpfs) beyond the header and data")


def test_create_bigger_than_the_tmpfs_fails_before_touching_memory(tmpfs):
    """A tmpfs may be as large as RAM, so create must not find out it is
    full by faulting pages in until it is: a request bigger than the free
    space is ENOSPC at once, with nothing mapped.  The child's address space
    is capped below the request, so mapping it first would be ENOMEM."""
    mnt = tmpfs("size=64M")
    uri = "file://" + str(mnt / "big.npy")
    free = free_bytes(mnt)
    out = run_python(
        """
        import errno, resource, sys
        import SharedArray as sa
        with open("/proc/self/statm") as f:
            size = int(f.read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (size + (512 << 20),) * 2)
        try:
            sa.create(sys.argv[1], 1 << 30, "u1")
        except OSError as e:
            print(errno.errorcode[e.errno])
        """, uri)
    assert out.strip() == "ENOSPC"
    assert os.listdir(mnt) == [] and free_bytes(mnt) == free
