"""Lifetimes users can manage: create(exist_ok=True) and TemporaryArray."""

import errno
import multiprocessing as mp
import os

import numpy as np
import pytest

import SharedArray as sa
from _helpers import shm_path


@pytest.mark.parametrize("n", [5, 100_000])   # written whole / reserved
def test_exist_ok_returns_the_existing_array(shm_name, n):
    name = shm_name()
    a = sa.create(name, n, "<i4")
    a[:] = np.arange(n)
    b = sa.create(name, n, "<i4", exist_ok=True)
    assert b.tolist()[:5] == [0, 1, 2, 3, 4]
    b[0] = -1
    assert a[0] == -1
    c = sa.create(name, (n,), np.int32, "C", 0o600, True)   # positional too
    assert c[0] == -1
    sa.delete(name)


def test_exist_ok_creates_when_missing(shm_name):
    name = shm_name()
    a = sa.create(name, (2, 3), "f4", order="F", exist_ok=True)
    assert a.shape == (2, 3) and a.flags.f_contiguous
    assert sa.info(name).order == "F"
    sa.delete(name)


@pytest.mark.parametrize("other", [
    dict(shape=(4, 3), dtype="<f4", order="C"),
    dict(shape=(3, 4), dtype="<f8", order="C"),
    dict(shape=(3, 4), dtype=">f4", order="C"),
    dict(shape=(3, 4), dtype="<f4", order="F"),
])
def test_exist_ok_with_another_layout_names_both(shm_name, other):
    name = shm_name()
    a = sa.create(name, (3, 4), "<f4")
    a[:] = 5
    with pytest.raises(FileExistsError) as info:
        sa.create(name, other["shape"], other["dtype"], order=other["order"],
                  exist_ok=True)
    exc = info.value
    assert exc.errno == errno.EEXIST and exc.filename == name
    text = str(exc)
    assert "(3, 4)" in text and str(other["shape"]) in text
    assert "float32" in text
    # Untouched.
    assert sa.info(name).dims == (3, 4) and float(sa.attach(name).sum()) == 60
    sa.delete(name)


def test_exist_ok_is_false_by_default(shm_name):
    name = shm_name()
    sa.create(name, 3)
    with pytest.raises(FileExistsError):
        sa.create(name, 3)
    sa.delete(name)


def _racer(name, index, n, barrier, q):
    barrier.wait()
    try:
        a = sa.create(name, n, "<i8", exist_ok=True)
        a[index] = index + 1
        q.put(("ok", int(a.shape[0])))
    except BaseException as exc:   # reported to the parent
        q.put((repr(exc), None))


@pytest.mark.parametrize("n", [8, 1 << 17])
def test_exist_ok_racers_end_on_one_array(shm_name, n):
    """Processes calling create(exist_ok=True) at the same moment all get
    the one array: every write lands in it, nobody sees it half made."""
    name = shm_name()
    ctx = mp.get_context("spawn")
    racers = 6
    for _ in range(3):
        barrier, q = ctx.Barrier(racers), ctx.Queue()
        procs = [ctx.Process(target=_racer, args=(name, i, n, barrier, q))
                 for i in range(racers)]
        for p in procs:
            p.start()
        got = [q.get(timeout=120) for _ in range(racers)]
        for p in procs:
            p.join(60)
        assert got == [("ok", n)] * racers
        a = sa.attach(name)
        assert a[:racers].tolist() == list(range(1, racers + 1))
        del a
        sa.delete(name)


def test_temporary_array_deletes_on_exit(shm_name):
    name = shm_name()
    with sa.TemporaryArray(name, 4, "u1") as a:
        a[:] = 3
        assert sa.attach(name, ro=True).tolist() == [3] * 4
    assert not os.path.exists(shm_path(name))
    assert a.tolist() == [3] * 4      # the memory stays valid


@pytest.mark.parametrize("exc", [ValueError, KeyboardInterrupt])
def test_temporary_array_deletes_on_exceptions(shm_name, exc):
    name = shm_name()
    with pytest.raises(exc):
        with sa.TemporaryArray(name, 4):
            raise exc("inside")
    assert not os.path.exists(shm_path(name))


def test_temporary_array_without_a_name():
    with sa.TemporaryArray(None, (2, 2), "f8") as a:
        t_name = a.base.name
        assert t_name.startswith("shm://sa-tmp-")
        assert sa.info(t_name).dims == (2, 2)
    with pytest.raises(FileNotFoundError):
        sa.info(t_name)


def test_temporary_array_leaves_a_newcomer_alone(shm_name):
    """The name was deleted and made again inside the block: not ours."""
    name = shm_name()
    t = sa.TemporaryArray(name, 3)
    sa.delete(name)
    sa.create(name, 5)
    t.cleanup()
    assert sa.info(name).dims == (5,)
    t.cleanup()                        # idempotent
    sa.delete(name)


def test_temporary_array_exist_ok_attaches_then_deletes(shm_name):
    name = shm_name()
    a = sa.create(name, 3, "i2")
    a[:] = 9
    with sa.TemporaryArray(name, 3, "i2", exist_ok=True) as b:
        assert b.tolist() == [9, 9, 9]
    assert not os.path.exists(shm_path(name))
