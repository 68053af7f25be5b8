"""Real process boundaries: spawned children and fresh interpreters."""

import multiprocessing as mp
import os
import queue
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import SharedArray as sa
from _helpers import (
    run_python,
    shm_entries,
    shm_path,
    worker_race_attacher,
    worker_read_ro,
    worker_write,
    worker_write_row,
)

SPAWN = mp.get_context("spawn")
LIMIT = 120  # seconds: only a guard against hangs, never asserted on


def join_all(procs):
    for p in procs:
        p.join(LIMIT)
        if p.is_alive():
            p.kill()
            p.join()
            pytest.fail("child process hung")
        assert p.exitcode == 0


def test_child_writes_parent_sees(shm_name):
    name = shm_name()
    a = sa.create(name, (10, 10), "f8")
    q = SPAWN.Queue()
    p = SPAWN.Process(target=worker_write, args=(name, 2.5, q))
    p.start()
    result = q.get(timeout=LIMIT)
    join_all([p])
    assert result == ("ok", 250.0)
    # The parent's own mapping sees the child's writes: no re-attach.
    assert (a == 2.5).all()
    sa.delete(name)


def test_children_write_disjoint_rows(shm_name, file_name):
    for name in ("shm://" + shm_name(), file_name().uri):
        a = sa.create(name, (4, 5000), "<i4")
        q = SPAWN.Queue()
        procs = [SPAWN.Process(target=worker_write_row, args=(name, row, q))
                 for row in range(4)]
        for p in procs:
            p.start()
        results = sorted(q.get(timeout=LIMIT) for _ in procs)
        join_all(procs)
        assert results == [("ok", row) for row in range(4)]
        for row in range(4):
            assert (a[row] == row + 1).all()
        sa.delete(name)


def test_child_read_only_attach(shm_name):
    name = shm_name()
    a = sa.create(name, 4, "i2")
    a[:] = [3, 1, 4, 1]
    q = SPAWN.Queue()
    p = SPAWN.Process(target=worker_read_ro, args=(name, q))
    p.start()
    result = q.get(timeout=LIMIT)
    join_all([p])
    assert result == ("ok", [3, 1, 4, 1], True, False)
    assert a.tolist() == [3, 1, 4, 1]
    sa.delete(name)


def test_shm_segment_outlives_its_creator(shm_name):
    name = shm_name()
    run_python(
        """
        import sys
        import numpy as np
        import SharedArray as sa
        a = sa.create(sys.argv[1], (3, 3), "<i8")
        a[...] = np.arange(9).reshape(3, 3)
        """,
        name,
    )
    b = sa.attach(name)
    np.testing.assert_array_equal(b, np.arange(9).reshape(3, 3))
    sa.delete(name)


def test_file_persists_across_fresh_interpreters(file_name):
    f = file_name()
    a = sa.create(f.uri, (5,), [("id", "<u4"), ("v", ">f8", (2,))])
    a["id"] = [10, 20, 30, 40, 50]
    a["v"] = np.arange(10).reshape(5, 2) / 4
    a.base.msync()
    del a
    out = run_python(
        """
        import sys
        import numpy as np
        import SharedArray as sa
        b = sa.attach(sys.argv[1])
        assert b.dtype == np.dtype([("id", "<u4"), ("v", ">f8", (2,))]), b.dtype
        print(b["id"].tolist(), b["v"].ravel().tolist())
        b["id"] += 1
        b.base.msync()
        """,
        f.uri,
    )
    assert out.split("] [")[0] == "[10, 20, 30, 40, 50"
    assert "2.25" in out
    # The child's writes are in the file, for NumPy and for us.
    assert np.load(f.path)["id"].tolist() == [11, 21, 31, 41, 51]
    assert sa.attach(f.uri)["id"].tolist() == [11, 21, 31, 41, 51]
    # And a third interpreter that only has NumPy reads it too.
    out = run_python(
        """
        import sys
        import numpy as np
        print(np.load(sys.argv[1], mmap_mode="r")["v"][4].tolist())
        """,
        f.path,
    )
    assert out.strip() == "[2.0, 2.25]"


def test_parent_and_child_share_live_memory(shm_name):
    """A child spins until the parent writes, then answers through the array."""
    name = shm_name()
    a = sa.create(name, 2, "<i8")
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(
            """
            import sys
            import SharedArray as sa
            a = sa.attach(sys.argv[1])
            print("attached", flush=True)
            while a[0] == 0:
                pass
            a[1] = a[0] * 2
            """
        ), name],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout.readline().strip() == "attached"
        a[0] = 21
        assert child.wait(timeout=LIMIT) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
    assert a[1] == 42
    sa.delete(name)


@pytest.mark.parametrize("backend", ["shm", "file"])
def test_racing_attacher_never_sees_a_partial_array(shm_name, tmp_path, backend):
    """A child attaches in a tight loop while the parent creates and deletes.

    Every array is big (its header, written first, would be visible long
    before the last page was reserved, were create not atomic).  The child
    must only ever see FileNotFoundError or a complete, zero-filled array of
    the right shape and dtype.
    """
    if backend == "shm":
        name = shm_name()
    else:
        name = "file://" + str(tmp_path / "race.npy")
    rounds, base_len, dtype = 12, 2 * 1024 * 1024, "<f8"  # 16 MiB each
    q = SPAWN.Queue()
    stop = SPAWN.Event()
    p = SPAWN.Process(target=worker_race_attacher,
                      args=(name, rounds, base_len, dtype, q, stop))
    p.start()
    try:
        for r in range(rounds):
            a = sa.create(name, (base_len + r,), dtype)
            del a
            try:
                msg = q.get(timeout=LIMIT)
            except queue.Empty:
                pytest.fail(f"child never saw round {r}")
            assert msg == ("seen", r), msg
            sa.delete(name)
        kind, attempts = q.get(timeout=LIMIT)
        assert kind == "done", attempts
        assert attempts >= rounds
    finally:
        stop.set()
        p.join(LIMIT)
        if p.is_alive():
            p.kill()
            p.join()
        try:
            sa.delete(name)
        except FileNotFoundError:
            pass
    assert p.exitcode == 0


def test_concurrent_creators_exactly_one_wins(shm_name):
    """Several processes race to create one name: one array, the rest
    FileExistsError, and the winner's data is what everybody attaches."""
    name = shm_name()
    code = textwrap.dedent(
        """
        import sys, os
        import SharedArray as sa
        name, me = sys.argv[1], int(sys.argv[2])
        try:
            a = sa.create(name, 1000, "<i8")
        except FileExistsError:
            print("exists")
        else:
            a[:] = me
            print("created")
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, name, str(i + 1)],
                              stdout=subprocess.PIPE, text=True)
             for i in range(4)]
    outs = []
    for p in procs:
        out, _ = p.communicate(timeout=LIMIT)
        assert p.returncode == 0
        outs.append(out.strip())
    assert sorted(outs) == ["created"] + ["exists"] * 3
    winner = outs.index("created") + 1
    b = sa.attach(name)
    assert (b == winner).all()
    assert shm_entries(name) == [name]
    sa.delete(name)
    assert not os.path.exists(shm_path(name))
