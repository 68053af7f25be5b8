import errno
import os

import numpy as np
import pytest

import SharedArray as sa
from _helpers import POSIX_BACKEND, build_npy, header_text, shm_path, write_bytes


def test_delete_removes_the_name(shm_name):
    name = shm_name()
    sa.create(name, 3)
    assert os.path.exists(shm_path(name))
    assert sa.delete(name) is None
    assert not os.path.lexists(shm_path(name))
    with pytest.raises(FileNotFoundError):
        sa.attach(name)


@pytest.mark.parametrize("form", ["{}", "shm://{}", "/{}", "shm:///{}"])
def test_delete_name_forms(shm_name, form):
    name = shm_name()
    sa.create(name, 3)
    sa.delete(form.format(name))
    assert not os.path.lexists(shm_path(name))


def test_attachments_survive_delete(shm_name):
    name = shm_name()
    a = sa.create(name, 1000, "i8")
    b = sa.attach(name)
    a[:] = np.arange(1000)
    sa.delete(name)
    # Both still map the same (now nameless) memory.
    assert b.sum() == np.arange(1000).sum()
    b[0] = -5
    assert a[0] == -5
    a[999] = 7
    assert b[999] == 7


def test_delete_file_backend(file_name):
    f = file_name()
    a = sa.create(f.uri, 4, "u2")
    a[:] = 3
    sa.delete(f.uri)
    assert not os.path.exists(f.path)
    assert a.tolist() == [3, 3, 3, 3]


def test_delete_np_save_file(file_name):
    f = file_name()
    np.save(f.path, np.arange(3))
    sa.delete(f.uri)
    assert not os.path.exists(f.path)


def test_delete_missing(shm_name, file_name):
    name = shm_name()
    with pytest.raises(FileNotFoundError) as info:
        sa.delete(name)
    assert info.value.errno == errno.ENOENT
    assert info.value.filename == name
    f = file_name()
    with pytest.raises(FileNotFoundError) as info:
        sa.delete(f.uri)
    assert info.value.filename == f.uri


def test_delete_twice(shm_name):
    name = shm_name()
    sa.create(name, 1)
    sa.delete(name)
    with pytest.raises(FileNotFoundError):
        sa.delete(name)


@pytest.mark.parametrize(
    "content",
    [b"", b"hello, not an array\n", b"\x93NUMP", b"PK\x03\x04" + b"\0" * 100],
    ids=["empty", "text", "short-magic", "zip"],
)
def test_delete_refuses_non_array_file(shm_name, file_name, content):
    name = shm_name()
    write_bytes(shm_path(name), content)
    if POSIX_BACKEND and not content:
        # An empty shm object is one being made by a creator (or left by
        # one that died): delete removes it; see test_errors.py.
        sa.delete(name)
        assert not os.path.lexists(shm_path(name))
    else:
        with pytest.raises(ValueError) as info:
            sa.delete(name)
        assert name in str(info.value)
        with open(shm_path(name), "rb") as fh:
            assert fh.read() == content
    f = file_name(".txt")
    write_bytes(f.path, content)
    with pytest.raises(ValueError):
        sa.delete(f.uri)
    with open(f.path, "rb") as fh:
        assert fh.read() == content


def test_delete_refuses_symlink_to_array(shm_name):
    target, link = shm_name(), shm_name()
    a = sa.create(target, 3)
    a[:] = 1
    os.symlink(shm_path(target), shm_path(link))
    with pytest.raises(ValueError) as info:
        sa.delete(link)
    assert link in str(info.value)
    assert os.path.islink(shm_path(link))
    assert sa.attach(target).tolist() == [1, 1, 1]
    os.unlink(shm_path(link))
    sa.delete(target)


def test_delete_refuses_file_symlink(file_name):
    real, link = file_name(), file_name()
    sa.create(real.uri, 2)
    os.symlink(real.path, link.path)
    with pytest.raises(ValueError):
        sa.delete(link.uri)
    assert os.path.islink(link.path) and os.path.isfile(real.path)


def test_delete_refuses_directory(shm_name, tmp_path):
    name = shm_name()
    os.mkdir(shm_path(name))
    with pytest.raises(ValueError) as info:
        sa.delete(name)
    assert name in str(info.value)
    assert os.path.isdir(shm_path(name))
    d = tmp_path / "adir"
    d.mkdir()
    with pytest.raises(ValueError):
        sa.delete("file://" + str(d))
    assert d.is_dir()


def test_delete_refuses_fifo(shm_name):
    name = shm_name()
    os.mkfifo(shm_path(name))
    with pytest.raises(ValueError) as info:
        sa.delete(name)  # must neither hang nor remove it
    assert name in str(info.value)
    assert os.path.lexists(shm_path(name))


def test_delete_removes_damaged_array(shm_name):
    """A file with the .npy magic is an array, even when damaged."""
    name = shm_name()
    sa.create(name, 1000, "f8")
    os.truncate(shm_path(name), 5000)
    with pytest.raises(ValueError):
        sa.attach(name)
    sa.delete(name)
    assert not os.path.lexists(shm_path(name))


def test_delete_crafted_header(file_name):
    f = file_name()
    write_bytes(f.path, build_npy(header_text("<f8", (2,)), b"\0" * 16))
    sa.delete(f.uri)
    assert not os.path.exists(f.path)


def test_recreated_name_is_fresh_and_independent(shm_name):
    name = shm_name()
    old = sa.create(name, 3, "i4")
    old[:] = 5
    sa.delete(name)
    new = sa.create(name, 4, "i4")
    assert new.tolist() == [0, 0, 0, 0]
    new[:] = 9
    assert old.tolist() == [5, 5, 5]
    assert sa.attach(name).tolist() == [9, 9, 9, 9]
    sa.delete(name)
