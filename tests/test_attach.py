import hashlib
import os
import threading

import numpy as np
import pytest

import SharedArray as sa
from _helpers import shm_path


def test_attach_sees_created_data(shm_name):
    name = shm_name()
    a = sa.create(name, (2, 3), "<i8")
    a[...] = [[1, 2, 3], [4, 5, 6]]
    b = sa.attach(name)
    assert type(b) is np.ndarray
    assert b.dtype == np.dtype("<i8") and b.shape == (2, 3)
    assert b.flags.writeable and b.flags.c_contiguous
    np.testing.assert_array_equal(b, a)
    sa.delete(name)


def test_attach_is_live_both_ways(shm_name):
    name = shm_name()
    a = sa.create(name, 100, "f8")
    b = sa.attach(name)
    c = sa.attach("shm://" + name)
    a[10] = 1.25
    assert b[10] == 1.25 and c[10] == 1.25
    c[99] = -2.0
    assert a[99] == -2.0 and b[99] == -2.0
    sa.delete(name)


@pytest.mark.parametrize("form", ["{}", "shm://{}", "/{}", "shm:///{}"])
def test_attach_name_forms(shm_name, form):
    name = shm_name()
    sa.create(name, 2, "u1")[:] = [4, 2]
    b = sa.attach(form.format(name))
    assert b.tolist() == [4, 2]
    assert b.base.name == form.format(name)
    sa.delete(name)


def test_attach_fortran_order(shm_name):
    name = shm_name()
    a = sa.create(name, (3, 4), "i2", order="F")
    a[...] = np.arange(12).reshape(3, 4)
    b = sa.attach(name)
    assert b.flags.f_contiguous and not b.flags.c_contiguous
    np.testing.assert_array_equal(b, np.arange(12).reshape(3, 4))
    sa.delete(name)


def test_attach_ro(shm_name):
    name = shm_name()
    a = sa.create(name, 5, "i4")
    a[:] = range(5)
    b = sa.attach(name, ro=True)
    assert not b.flags.writeable
    assert b.base.writable is False
    assert b.tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError):
        b[0] = 9
    # Writes through a writable mapping are seen by the read-only one.
    a[0] = 42
    assert b[0] == 42
    # Views of a read-only array are read-only too.
    v = b[1:]
    assert not v.flags.writeable
    with pytest.raises(ValueError):
        v[:] = 0
    assert a.tolist() == [42, 1, 2, 3, 4]
    sa.delete(name)


def test_attach_ro_cannot_be_made_writeable(shm_name):
    """The memory is mapped read-only: flipping the flag must be refused
    (writing would otherwise crash the process)."""
    name = shm_name()
    sa.create(name, 4, "u1")
    b = sa.attach(name, ro=True)
    with pytest.raises(ValueError):
        b.flags.writeable = True
    assert not b.flags.writeable
    v = b.view()
    with pytest.raises(ValueError):
        v.flags.writeable = True
    sa.delete(name)


@pytest.mark.parametrize("ro", [1, "yes", [0]], ids=repr)
def test_attach_ro_takes_truthy_values(shm_name, ro):
    name = shm_name()
    sa.create(name, 2)
    assert not sa.attach(name, ro=ro).flags.writeable
    assert sa.attach(name, ro=0).flags.writeable
    assert sa.attach(name, False).flags.writeable
    sa.delete(name)


def test_attach_ro_file_leaves_file_unchanged(file_name):
    f = file_name()
    a = sa.create(f.uri, (64, 64), "f4")
    a[...] = np.random.default_rng(1).random((64, 64))
    del a
    with open(f.path, "rb") as fh:
        before = hashlib.sha256(fh.read()).hexdigest()
    for ro in (True, False):
        b = sa.attach(f.uri, ro=ro)
        float(b.sum())
        del b
    with open(f.path, "rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == before


def test_attach_zero_size_and_0d(shm_name):
    n1, n2 = shm_name(), shm_name()
    sa.create(n1, (3, 0), "f8")
    a = sa.create(n2, (), "c16")
    a[()] = 1 + 2j
    b1 = sa.attach(n1)
    assert b1.shape == (3, 0) and b1.size == 0 and b1.dtype == np.float64
    b2 = sa.attach(n2)
    assert b2.shape == () and b2[()] == 1 + 2j
    sa.delete(n1)
    sa.delete(n2)


def test_attach_relative_file(tmp_path, monkeypatch):
    sa.create("file://" + str(tmp_path / "r.npy"), 3, "i2")[:] = [1, 2, 3]
    monkeypatch.chdir(tmp_path)
    assert sa.attach("file://r.npy").tolist() == [1, 2, 3]
    assert sa.attach("file://./r.npy", ro=True).tolist() == [1, 2, 3]


def test_attach_np_save_file_in_dev_shm(shm_name):
    """A .npy written by NumPy straight into /dev/shm attaches by shm name."""
    name = shm_name()
    want = np.arange(12, dtype=">i4").reshape(3, 4)
    with open(shm_path(name), "wb") as fh:
        np.save(fh, want)
    b = sa.attach(name)
    assert b.dtype == want.dtype
    np.testing.assert_array_equal(b, want)
    b[0, 0] = 100
    assert np.load(shm_path(name))[0, 0] == 100
    sa.delete(name)


def test_attach_after_delete_fails(shm_name):
    name = shm_name()
    sa.create(name, 2)
    sa.delete(name)
    with pytest.raises(FileNotFoundError):
        sa.attach(name)


def test_attach_from_threads(shm_name):
    name = shm_name()
    a = sa.create(name, (50,), [("x", "<i4"), ("y", "<f8")])
    a["x"] = np.arange(50)
    errors = []

    def run():
        try:
            for _ in range(100):
                b = sa.attach(name, ro=True)
                assert b.dtype == a.dtype and b.shape == (50,)
                assert b["x"][49] == 49
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    sa.delete(name)


def test_many_attachments_do_not_leak_descriptors(shm_name):
    name = shm_name()
    sa.create(name, 10)
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(300):
        b = sa.attach(name)
        del b
    for _ in range(50):
        with pytest.raises(FileNotFoundError):
            sa.attach(name + "-missing")
    assert len(os.listdir("/proc/self/fd")) <= before
    sa.delete(name)
