"""Tests that need root: a tiny tmpfs, and a second, unprivileged uid."""

import errno
import functools
import os
import pathlib
import shutil
import tempfile
import uuid

import numpy as np
import pytest

import SharedArray as sa
from _helpers import IS_ROOT, NOBODY, as_nobody, free_bytes, in_child, needs, outcome, shm_path

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="needs root (mount, setuid)")


@pytest.fixture
def tiny_tmpfs(tmpfs):
    """A 1 MiB tmpfs, unmounted afterwards (and the test fails if it can't
    be: a leaked descriptor or mapping would keep it busy)."""
    return tmpfs("size=1M")


@pytest.mark.parametrize("shape, dtype", [((2 * 1024 * 1024,), "u1"), ((300, 1000), "<f8"),
                                          ((1 << 40,), "u1")],
                         ids=["2MiB", "2.4MB", "1TiB"])
def test_enospc_leaves_nothing(tiny_tmpfs, shape, dtype):
    uri = "file://" + str(tiny_tmpfs / "big.npy")
    free = free_bytes(tiny_tmpfs)
    with pytest.raises(OSError) as info:
        sa.create(uri, shape, dtype)
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == uri
    # No file, no hidden temporary, no blocks held by an orphan.
    assert os.listdir(tiny_tmpfs) == []
    assert free_bytes(tiny_tmpfs) == free
    # The space is really there for an array that fits.
    small = sa.create(uri, (256 * 1024,), "u1")
    try:
        small[-1] = 1
        assert sa.attach(uri)[-1] == 1
    finally:
        del small  # unmapped before the tmpfs is unmounted, even on failure
    sa.delete(uri)
    assert os.listdir(tiny_tmpfs) == []
    assert free_bytes(tiny_tmpfs) == free


def test_enospc_when_filesystem_partly_used(tiny_tmpfs):
    first = "file://" + str(tiny_tmpfs / "first.npy")
    a = sa.create(first, (600 * 1024,), "u1")
    try:
        a[:] = 7
        second = "file://" + str(tiny_tmpfs / "second.npy")
        with pytest.raises(OSError) as info:
            sa.create(second, (600 * 1024,), "u1")
        assert info.value.errno == errno.ENOSPC
        assert os.listdir(tiny_tmpfs) == ["first.npy"]
        # The first array is untouched, and every page of it is usable.
        assert (a == 7).all()
        a[-1] = 8
    finally:
        del a
    assert sa.attach(first)[-1] == 8
    sa.delete(first)


@pytest.mark.parametrize("kib", [100, 2048], ids=["fits", "too-big"])
def test_create_existing_name_is_file_exists_even_when_full(tiny_tmpfs, kib):
    """The name is taken: that is the error, whatever the size asked for,
    and nothing is reserved for an array that cannot be created."""
    uri = "file://" + str(tiny_tmpfs / "taken.npy")
    a = sa.create(uri, (600 * 1024,), "u1")
    try:
        a[:] = 1
        free = free_bytes(tiny_tmpfs)
        with pytest.raises(FileExistsError) as info:
            sa.create(uri, (kib * 1024,), "u1")
        assert info.value.errno == errno.EEXIST
        assert info.value.filename == uri
        assert os.listdir(tiny_tmpfs) == ["taken.npy"]
        assert free_bytes(tiny_tmpfs) == free
        assert (a == 1).all()
    finally:
        del a
    sa.delete(uri)


def test_reserved_array_survives_filling_the_filesystem(tiny_tmpfs):
    """create reserves its blocks: filling the disk afterwards cannot make
    a write into the array fail (SIGBUS)."""
    uri = "file://" + str(tiny_tmpfs / "reserved.npy")
    a = sa.create(uri, (400 * 1024,), "u1")
    try:
        with pytest.raises(OSError) as info, open(tiny_tmpfs / "filler", "wb") as fh:
            while True:
                fh.write(b"\1" * 65536)
                fh.flush()
        assert info.value.errno == errno.ENOSPC

        def touch_every_page(arr):
            # SIGBUS here (in a child, reported as a failure) were the pages
            # not reserved by create.
            arr[:] = 5
            b = sa.attach(uri)
            b[-4096:] = 6
            return int(arr.sum())

        got = in_child(functools.partial(touch_every_page, a))
        assert got == 5 * (400 * 1024 - 4096) + 6 * 4096
    finally:
        del a
    os.unlink(tiny_tmpfs / "filler")
    sa.delete(uri)


@pytest.fixture
def public_dir():
    """A root-owned 0755 directory that other users can reach (pytest's
    tmp_path is 0700)."""
    d = pathlib.Path(tempfile.mkdtemp(prefix="sa-test-root-", dir="/tmp"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_default_mode_keeps_other_users_out(shm_name):
    name = shm_name()
    a = sa.create(name, 4, "i4")
    a[:] = 9
    assert os.stat(shm_path(name)).st_mode & 0o777 == 0o600
    got = as_nobody(lambda: [
        outcome(lambda: sa.attach(name)),
        outcome(lambda: sa.attach(name, ro=True)),
        outcome(lambda: sa.delete(name)),
    ])
    refused = ["PermissionError", errno.EACCES, name]
    assert got[0] == refused
    assert got[1] == refused
    assert got[2][0] == "PermissionError" and got[2][2] == name
    assert os.path.exists(shm_path(name))
    assert sa.attach(name).tolist() == [9, 9, 9, 9]
    sa.delete(name)


def test_mode_0644_lets_others_read_only(shm_name):
    name = shm_name()
    a = sa.create(name, 3, "<f8", mode=0o644)
    a[:] = [1.5, 2.5, 3.5]
    got = as_nobody(lambda: [
        outcome(lambda: sa.attach(name)),
        sa.attach(name, ro=True).tolist(),
        outcome(lambda: sa.delete(name)),  # sticky /dev/shm: not theirs
    ])
    assert got[0] == ["PermissionError", errno.EACCES, name]
    assert got[1] == [1.5, 2.5, 3.5]
    assert got[2][0] == "PermissionError"
    assert os.path.exists(shm_path(name))
    sa.delete(name)


def test_mode_0666_lets_others_write(shm_name):
    name = shm_name()
    a = sa.create(name, 3, "<i8", mode=0o666)

    def child():
        b = sa.attach(name)
        b[:] = [7, 8, 9]
        return b.tolist()

    assert as_nobody(child) == [7, 8, 9]
    assert a.tolist() == [7, 8, 9]
    sa.delete(name)


@needs("list")
def test_list_skips_what_the_user_cannot_read(shm_name):
    private, public = shm_name(), shm_name()
    sa.create(private, 2)
    sa.create(public, 2, mode=0o644)
    names = as_nobody(lambda: [e.name for e in sa.list()])
    assert public in names
    assert private not in names
    sa.delete(private)
    sa.delete(public)


def test_unprivileged_create(shm_name, public_dir):
    """An ordinary user can create (the no-privilege link path), and gets
    exactly the mode asked for."""
    name = shm_name()
    d = public_dir / "nobody"
    d.mkdir()
    os.chown(d, NOBODY, NOBODY)
    furi = "file://" + str(d / "mine.npy")

    def child():
        os.umask(0o077)
        a = sa.create(name, 5, "u1")
        a[:] = 3
        b = sa.create(furi, 2, "u2", mode=0o640)
        b[:] = 1
        return [a.tolist(), b.tolist()]

    assert as_nobody(child) == [[3] * 5, [1, 1]]
    st = os.stat(shm_path(name))
    assert (st.st_uid, st.st_mode & 0o777) == (NOBODY, 0o600)
    st = os.stat(d / "mine.npy")
    assert (st.st_uid, st.st_mode & 0o777) == (NOBODY, 0o640)
    assert sa.attach(name).tolist() == [3] * 5
    assert sa.attach(furi).tolist() == [1, 1]
    assert os.listdir(d) == ["mine.npy"]
    sa.delete(name)


def test_unprivileged_create_in_unwritable_dir(public_dir):
    d = public_dir
    uri = "file://" + str(d / f"x-{uuid.uuid4().hex[:6]}.npy")
    got = as_nobody(lambda: outcome(lambda: sa.create(uri, 3)))
    assert got == ["PermissionError", errno.EACCES, uri]
    assert os.listdir(d) == []


def test_root_bypasses_mode_0(shm_name):
    """mode=0 is applied exactly (no bits), yet root may still attach it:
    that is the kernel's rule, not the library's; an ordinary user may not."""
    name = shm_name()
    a = sa.create(name, 2, "i1", mode=0)
    a[:] = 4
    assert os.stat(shm_path(name)).st_mode & 0o777 == 0
    assert sa.attach(name, ro=True).tolist() == [4, 4]
    got = as_nobody(lambda: outcome(lambda: sa.attach(name, ro=True)))
    assert got == ["PermissionError", errno.EACCES, name]
    sa.delete(name)
    assert np.all(a == 4)


def test_enospc_says_how_much_was_asked_and_how_much_there_is(tiny_tmpfs):
    uri = "file://" + str(tiny_tmpfs / "big.npy")
    with pytest.raises(OSError) as info:
        sa.create(uri, 4 << 20, "u1")
    exc = info.value
    assert exc.errno == errno.ENOSPC and exc.filename == uri
    assert f"needs {sa_page() + (4 << 20)} bytes" in str(exc)
    assert f"{tiny_tmpfs} has {free_bytes(tiny_tmpfs)} free" in str(exc)


def sa_page():
    return os.sysconf("SC_PAGESIZE")


def test_readable_but_not_writable_suggests_ro(shm_name):
    """attach() of an array one may read but not write: PermissionError
    that says attach(name, ro=True) would work (and it does)."""
    name = shm_name()
    sa.create(name, 3, "u1", mode=0o644)

    def attach_rw():
        try:
            sa.attach(name)
        except OSError as exc:
            return [type(exc).__name__, exc.errno, exc.filename, str(exc)]
        return "ok"

    got = as_nobody(attach_rw)
    assert got[:3] == ["PermissionError", errno.EACCES, name]
    assert "ro=True" in got[3]
    assert as_nobody(lambda: outcome(lambda: sa.attach(name, ro=True))) == "ok"
    sa.delete(name)
