import errno
import os
import stat

import numpy as np
import pytest

import SharedArray as sa
from _helpers import IS_ROOT, MAXDIMS, PAGE, fill_random, read_header, shm_path


def test_returns_zero_filled_ndarray_like_np_zeros(shm_name):
    name = shm_name()
    a = sa.create(name, (3, 5), dtype="f4")
    want = np.zeros((3, 5), dtype="f4")
    assert type(a) is np.ndarray
    assert a.shape == want.shape and a.dtype == want.dtype
    assert a.flags.c_contiguous and a.flags.writeable
    assert not a.any()
    sa.delete(name)


def test_default_dtype_is_float64(shm_name):
    name = shm_name()
    a = sa.create(name, 4)
    assert a.dtype == np.zeros(4).dtype == np.float64
    assert a.shape == (4,)
    sa.delete(name)


@pytest.mark.parametrize(
    "shape, want",
    [
        (5, (5,)),
        (np.int64(5), (5,)),
        ((2, 3), (2, 3)),
        ([2, 3], (2, 3)),
        ((np.int32(2), np.uint8(3)), (2, 3)),
        ((), ()),
        ((0,), (0,)),
        ((4, 0, 2), (4, 0, 2)),
        ((1,) * MAXDIMS, (1,) * MAXDIMS),
    ],
    ids=["int", "np-int", "tuple", "list", "np-ints", "0-d", "empty", "zero-dim", "max-dims"],
)
def test_shape_accepted_like_np_zeros(shm_name, shape, want):
    name = shm_name()
    a = sa.create(name, shape, dtype="i2")
    assert a.shape == want == np.zeros(shape, dtype="i2").shape
    assert a.size == 0 or not a.any()
    b = sa.attach(name)
    assert b.shape == want
    sa.delete(name)


@pytest.mark.parametrize(
    "dtype", [float, np.int16, "u4", np.dtype(">c8"), "S5", "<U3", "M8[ms]"],
    ids=str,
)
def test_dtype_accepted_like_np_zeros(shm_name, dtype):
    name = shm_name()
    a = sa.create(name, 3, dtype)
    assert a.dtype == np.zeros(3, dtype).dtype
    assert a.tobytes() == np.zeros(3, dtype).tobytes()
    sa.delete(name)


@pytest.mark.parametrize(
    "shape, dtype",
    [
        ((2,), ("f8", (3,))),
        ((4, 5), ("<i2", (2, 3))),
        ((), ("u1", (7,))),
        ((2,), np.dtype((np.dtype(("i4", (2,))), (3,)))),
    ],
    ids=["1d+1", "2d+2", "0d+1", "nested-subarray"],
)
def test_subarray_dtype_is_expanded_into_the_shape(shm_name, shape, dtype):
    name = shm_name()
    a = sa.create(name, shape, dtype)
    want = np.zeros(shape, dtype)
    assert a.shape == want.shape
    assert a.dtype == want.dtype
    b = sa.attach(name)
    assert b.shape == want.shape and b.dtype == want.dtype
    sa.delete(name)


def test_subarray_dtype_with_fortran_order(shm_name):
    name = shm_name()
    a = sa.create(name, (2, 3), ("f8", (4,)), order="F")
    want = np.zeros((2, 3), ("f8", (4,)), order="F")
    assert a.shape == want.shape == (2, 3, 4)
    assert a.strides == want.strides
    assert a.flags.f_contiguous
    a[...] = np.arange(24).reshape(2, 3, 4)
    b = sa.attach(name)
    assert b.flags.f_contiguous
    np.testing.assert_array_equal(b, np.arange(24).reshape(2, 3, 4))
    sa.delete(name)


@pytest.mark.parametrize("order", ["C", "F"])
def test_order(shm_name, order):
    name = shm_name()
    a = sa.create(name, (3, 4, 2), "i4", order=order)
    assert a.flags.c_contiguous == (order == "C")
    assert a.flags.f_contiguous == (order == "F")
    assert a.strides == np.zeros((3, 4, 2), "i4", order=order).strides
    a[...] = np.arange(24).reshape(3, 4, 2)
    b = sa.attach(name)
    assert b.strides == a.strides
    np.testing.assert_array_equal(b, np.arange(24).reshape(3, 4, 2))
    sa.delete(name)


def test_segment_is_a_file_in_dev_shm(shm_name):
    name = shm_name()
    a = sa.create(name, (10,), "u1")
    path = shm_path(name)
    st = os.stat(path)
    assert stat.S_ISREG(st.st_mode)
    # The file holds the header and at least the data.
    assert st.st_size >= read_header(path)["data_offset"] + a.nbytes
    sa.delete(name)
    assert not os.path.exists(path)


@pytest.mark.parametrize("form", ["shm://{}", "{}", "/{}", "shm:///{}", "//{}"])
def test_name_forms_all_mean_dev_shm(shm_name, form):
    name = shm_name()
    a = sa.create(form.format(name), 3, "i8")
    a[:] = [7, 8, 9]
    assert os.path.isfile(shm_path(name))
    # Every spelling reaches the same segment.
    for other in (name, "shm://" + name, "/" + name):
        assert sa.attach(other).tolist() == [7, 8, 9]
    sa.delete(name)


def test_longest_name_accepted(shm_name):
    name = shm_name(length=255)
    assert len(name.encode()) == 255
    sa.create(name, 2)
    assert os.path.isfile(shm_path(name))
    sa.delete(name)


def test_non_ascii_name(shm_name):
    name = shm_name(suffix="-\u00fcn\u00efc\u00f6de-\u6570\u7ec4")
    a = sa.create(name, 2, "i4")
    a[:] = [1, 2]
    assert os.path.isfile(shm_path(name))
    assert sa.attach(name).tolist() == [1, 2]
    sa.delete(name)


def test_writes_are_shared_with_attachments(shm_name):
    name = shm_name()
    a = sa.create(name, (4, 4), "f8")
    b = sa.attach(name)
    a[1, 2] = 3.5
    b[3, 0] = -1.0
    assert b[1, 2] == 3.5
    assert a[3, 0] == -1.0
    sa.delete(name)


def test_large_array_zero_filled(shm_name):
    name = shm_name()
    a = sa.create(name, (8 * 1024 * 1024,), "u1")
    assert a.nbytes == 8 * 1024 * 1024
    assert not a.any()
    a[-1] = 1
    assert sa.attach(name)[-1] == 1
    sa.delete(name)


def test_file_backend_absolute(file_name):
    f = file_name()
    a = sa.create(f.uri, (2, 3), "<i4")
    a[...] = [[1, 2, 3], [4, 5, 6]]
    assert os.path.isfile(f.path)
    np.testing.assert_array_equal(np.load(f.path), [[1, 2, 3], [4, 5, 6]])
    sa.delete(f.uri)
    assert not os.path.exists(f.path)


def test_file_backend_relative_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    a = sa.create("file://sub/rel.npy", 5, "u2")
    a[:] = range(5)
    assert (tmp_path / "sub" / "rel.npy").is_file()
    b = sa.attach("file://" + str(tmp_path / "sub" / "rel.npy"))
    assert b.tolist() == [0, 1, 2, 3, 4]
    a2 = sa.create("file://bare.npy", 1)  # no directory part at all
    assert (tmp_path / "bare.npy").is_file()
    del a2
    sa.delete("file://bare.npy")
    sa.delete("file://sub/rel.npy")
    assert sorted(os.listdir(tmp_path)) == ["sub"]
    assert os.listdir(tmp_path / "sub") == []


def test_default_mode_is_0600(shm_name, file_name):
    name = shm_name()
    sa.create(name, 1)
    assert os.stat(shm_path(name)).st_mode & 0o7777 == 0o600
    f = file_name()
    sa.create(f.uri, 1)
    assert os.stat(f.path).st_mode & 0o7777 == 0o600
    sa.delete(name)


@pytest.mark.parametrize("mode", [0o640, 0o644, 0o666, 0o777, 0o400, 0o000, 0o123])
def test_mode_is_exact_and_ignores_umask(shm_name, mode):
    name = shm_name()
    old = os.umask(0o077)
    try:
        sa.create(name, 1, mode=mode)
    finally:
        os.umask(old)
    assert os.stat(shm_path(name)).st_mode & 0o7777 == mode
    if mode & 0o400 or IS_ROOT:
        sa.delete(name)  # else delete cannot read it; the fixture unlinks it


def test_mode_keyword_on_file_backend(file_name):
    f = file_name()
    old = os.umask(0o022)
    try:
        sa.create(f.uri, 1, mode=0o666)
    finally:
        os.umask(old)
    assert os.stat(f.path).st_mode & 0o7777 == 0o666


def test_create_existing_name_fails_and_keeps_old_data(shm_name):
    name = shm_name()
    a = sa.create(name, 3, "i4")
    a[:] = [1, 2, 3]
    with pytest.raises(FileExistsError) as info:
        sa.create(name, 10, "f8")
    assert info.value.errno == errno.EEXIST
    assert info.value.filename == name
    b = sa.attach(name)
    assert b.dtype == np.dtype("i4") and b.tolist() == [1, 2, 3]
    sa.delete(name)


def test_create_existing_file_fails_and_keeps_it(file_name):
    f = file_name()
    with open(f.path, "wb") as fh:
        fh.write(b"precious")
    with pytest.raises(FileExistsError) as info:
        sa.create(f.uri, 3)
    assert info.value.filename == f.uri
    with open(f.path, "rb") as fh:
        assert fh.read() == b"precious"
    assert os.listdir(os.path.dirname(f.path)) == [os.path.basename(f.path)]


def test_create_does_not_follow_a_symlink(file_name, tmp_path):
    f = file_name()
    target = tmp_path / "target-that-does-not-exist"
    os.symlink(target, f.path)
    with pytest.raises(FileExistsError):
        sa.create(f.uri, 3)
    assert not target.exists()
    assert os.path.islink(f.path)


def test_create_over_dangling_shm_symlink_fails(shm_name, tmp_path):
    name = shm_name()
    target = tmp_path / "elsewhere"
    os.symlink(target, shm_path(name))
    with pytest.raises(FileExistsError):
        sa.create(name, 3)
    assert not target.exists()
    assert os.path.islink(shm_path(name))


def test_create_in_missing_directory(tmp_path):
    uri = "file://" + str(tmp_path / "no" / "such" / "dir" / "x.npy")
    with pytest.raises(FileNotFoundError) as info:
        sa.create(uri, 3)
    assert info.value.errno == errno.ENOENT
    assert info.value.filename == uri
    assert os.listdir(tmp_path) == []


def test_failed_create_leaves_nothing(file_name, tmp_path):
    f = file_name()
    for bad, exc in (
        (lambda: sa.create(f.uri, -1), ValueError),
        (lambda: sa.create(f.uri, 3, "O"), TypeError),
        (lambda: sa.create(f.uri, 3, mode=0o1000), ValueError),
        (lambda: sa.create(f.uri, (2**40, 2**40)), ValueError),
        (lambda: sa.create(f.uri, 3, order="K"), ValueError),
    ):
        with pytest.raises(exc):
            bad()
    assert os.listdir(tmp_path) == []


def test_created_data_is_page_aligned(shm_name):
    name = shm_name()
    a = sa.create(name, 3, "f8")
    assert a.ctypes.data % PAGE == 0
    fill_random(a)
    sa.delete(name)
