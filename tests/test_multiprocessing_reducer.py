"""Arrays in SharedArray segments travel between processes by reference.

multiprocessing's pickler sends (name, offset, shape, strides, dtype); the
receiver re-attaches.  Proof of sharing is always a write in one process seen
by the other, never an inspection of the pickle.
"""

import errno
import multiprocessing as mp
import pickle
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.reduction import ForkingPickler

import numpy as np
import pytest

import SharedArray as sa
from _helpers import is_shared

METHODS = [m for m in ("spawn", "forkserver", "fork")
           if m in mp.get_all_start_methods()]


def describe(a):
    return (is_shared(a), a.shape, a.strides, a.dtype, a.flags.writeable,
            a.tolist())


def fill(a, value):
    a[...] = value
    return is_shared(a)


def fill_and_report(queue, a, value):
    a[...] = value
    queue.put(is_shared(a))


def make_view_in_child(name):
    """Runs in a worker: attaches and returns a view, which travels back."""
    return sa.attach(name)[1:3]


@pytest.fixture(params=METHODS)
def ctx(request):
    return mp.get_context(request.param)


@pytest.fixture
def shared(shm_name):
    name = "shm://" + shm_name()
    a = sa.create(name, (6, 5), "<f4")
    a[...] = np.arange(30, dtype="<f4").reshape(6, 5)
    yield name, a
    try:
        sa.delete(name)
    except FileNotFoundError:
        pass


def views(name, a):
    ro = sa.attach(name, ro=True)
    return {
        "whole": a,
        "rows": a[1:4],
        "transpose": a.T,
        "negative strides": a[::-2, 1],
        "fancy column": a[:, 3],
        "scalar-like 0-d": a[2, 2, ...],
        "read-only": ro[2:],
    }


def test_views_arrive_shared_and_equal(ctx, shared):
    name, a = shared
    with ctx.Pool(1) as pool:
        for label, v in views(name, a).items():
            got = pool.apply(describe, (v,))
            shared_flag, shape, strides, dtype, writeable, values = got
            assert shared_flag, label
            assert (shape, strides, dtype, writeable) == (
                v.shape, v.strides, v.dtype, v.flags.writeable), label
            assert values == v.tolist(), label


def test_child_writes_are_seen_by_parent(ctx, shared):
    name, a = shared
    with ctx.Pool(1) as pool:
        assert pool.apply(fill, (a[::-2, 1], -1.0))
        assert pool.apply(fill, (a.T[4], 99.0))
    assert (a[::-2, 1] == -1).all()
    assert (a[:, 4] == 99).all()
    assert a[0, 0] == 0 and a[2, 1] == 11  # untouched elements stay


def test_process_args_and_queue(ctx, shared):
    name, a = shared
    q = ctx.Queue()
    p = ctx.Process(target=fill_and_report, args=(q, a[2], 5.0))
    p.start()
    assert q.get(timeout=60) is True
    p.join(60)
    assert p.exitcode == 0
    assert (a[2] == 5).all()


def test_process_pool_executor_round_trip(ctx, shared):
    name, a = shared
    with ProcessPoolExecutor(1, mp_context=ctx) as ex:
        assert ex.submit(fill, a[4:], 3.0).result(timeout=60)
        back = ex.submit(make_view_in_child, name).result(timeout=60)
    assert (a[4:] == 3).all()
    # The view made in the child comes back by reference too.
    assert is_shared(back)
    back[...] = 8
    assert (a[1:3] == 8).all()


def test_read_only_view_stays_read_only(ctx, shared):
    name, a = shared
    ro = sa.attach(name, ro=True)
    with ctx.Pool(1) as pool:
        with pytest.raises(ValueError, match="read-only"):
            pool.apply(fill, (ro[0], 1.0))
    assert (a[0] == np.arange(5)).all()


def test_deleted_name_falls_back_to_value(ctx, shared):
    name, a = shared
    sa.delete(name)
    with ctx.Pool(1) as pool:
        shared_flag, *_, values = pool.apply(describe, (a[1:3],))
    assert not shared_flag
    assert values == a[1:3].tolist()


def test_replaced_name_falls_back_to_value(ctx, shared):
    name, a = shared
    sa.delete(name)
    other = sa.create(name, (6, 5), "<f4")
    other[...] = -7
    with ctx.Pool(1) as pool:
        shared_flag, *_, values = pool.apply(describe, (a,))
    assert not shared_flag
    assert values == a.tolist()  # the old array's values, not the new one's


def test_replaced_in_transit_is_an_error(shared):
    name, a = shared
    payload = ForkingPickler.dumps(a[1:])
    sa.delete(name)
    sa.create(name, (6, 5), "<f4")
    with pytest.raises(OSError) as info:
        pickle.loads(payload)
    assert info.value.errno == errno.ESTALE
    assert info.value.filename == name


def test_file_backed_relative_name_travels(ctx, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = sa.create("file://rel.npy", (4,), "i8")
    try:
        with ctx.Pool(1) as pool:
            assert pool.apply(fill, (a[1:], 4))
        assert a.tolist() == [0, 4, 4, 4]
    finally:
        sa.delete("file://rel.npy")


def test_plain_pickle_copies(shared):
    name, a = shared
    b = pickle.loads(pickle.dumps(a[1:3]))
    assert not is_shared(b)
    b[...] = 100
    assert not (a[1:3] == 100).any()


def test_ordinary_arrays_still_travel_by_value(ctx):
    x = np.arange(10.0)[::3]
    with ctx.Pool(1) as pool:
        shared_flag, shape, strides, dtype, writeable, values = pool.apply(
            describe, (x,))
    assert not shared_flag
    assert values == x.tolist()


def test_structured_dtype_view(ctx, shm_name):
    name = "shm://" + shm_name()
    dt = np.dtype([("t", "<M8[us]"), ("xy", "<f8", (2,)), ("tag", "S3")])
    a = sa.create(name, 4, dt)
    try:
        with ctx.Pool(1) as pool:
            assert pool.apply(fill, (a["xy"][1:], 2.5))
        assert (a["xy"][1:] == 2.5).all() and (a["xy"][0] == 0).all()
    finally:
        sa.delete(name)
