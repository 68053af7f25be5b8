"""SharedArray.dask on a real distributed cluster of worker processes.

One LocalCluster (2 worker processes, 1 thread each) serves the module.  The
checks that data moved as it should are made from this process with NumPy
reading /dev/shm, or by the workers reporting what they saw.

dask and distributed come with the [test] extra (CI installs it), so they
are imported unconditionally: a missing package fails the module rather
than skipping it.
"""

import os
import pickle
import subprocess
import sys

import dask
import dask.array as da
import numpy as np
import pytest
from dask.array.core import normalize_chunks
from distributed import Client, LocalCluster

import SharedArray as sa
import SharedArray.dask as sad
from _helpers import needs, shm_path


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    c = Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


@pytest.fixture
def segment(shm_name):
    """A (300, 70) float64 shared array filled with distinct values."""
    name = "shm://" + shm_name()
    a = sa.create(name, (300, 70))
    a[...] = np.arange(a.size, dtype=float).reshape(a.shape)
    return name, a


def on_disk(name):
    """The segment as NumPy reads the file, independently of SharedArray."""
    return np.load(shm_path(name), mmap_mode="r")


def shared_memory_of(block):
    """(lives in a SharedArray mapping, writeable): run on the worker."""
    base = block.base
    while isinstance(base, np.ndarray):
        base = base.base
    return isinstance(base, sa.Mapping), block.flags.writeable


def report_block(block):
    shared, writeable = shared_memory_of(block)
    out = np.empty((1,) * block.ndim, dtype=object)
    out.flat[0] = (os.getpid(), shared, writeable)
    return out


def reports(x):
    return list(x.map_blocks(report_block, dtype=object,
                             chunks=(1,) * x.ndim).compute().flat)


# ---------------------------------------------------------------- imports


def test_import_sharedarray_does_not_import_dask():
    code = ("import sys, SharedArray, SharedArray.dask; "
            "assert 'dask' not in sys.modules, 'dask imported'; "
            "assert 'distributed' not in sys.modules, 'distributed imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ---------------------------------------------------------------- to_dask


@pytest.mark.parametrize("chunks", ["auto", (64, 70), 50, ((100, 200), (30, 40))])
def test_to_dask_equals_the_array(client, segment, chunks):
    name, a = segment
    x = sad.to_dask(name, chunks=chunks)
    assert x.shape == a.shape and x.dtype == a.dtype
    assert x.chunks == normalize_chunks(chunks, a.shape, dtype=a.dtype)
    np.testing.assert_array_equal(x.compute(), a)
    assert x.sum().compute() == a.sum()
    np.testing.assert_array_equal((x[10:200:3, ::-2] * 2).compute(),
                                  a[10:200:3, ::-2] * 2)


@pytest.mark.parametrize("dtype,order", [("<i2", "C"), (">f4", "F"),
                                         ([("a", "<i4"), ("b", "<f8")], "C"),
                                         ("M8[s]", "F")])
def test_to_dask_dtypes_and_orders(client, shm_name, dtype, order):
    name = "shm://" + shm_name()
    a = sa.create(name, (40, 30), dtype, order=order)
    raw = a.ravel(order="K").view(np.uint8)    # a view: the array's bytes
    raw[...] = np.arange(a.nbytes) % 251
    x = sad.to_dask(name, chunks=(16, 16))
    assert x.dtype == a.dtype
    got = x.compute()
    assert got.dtype == a.dtype
    assert got.tobytes() == a.tobytes()


def test_to_dask_chunks_are_views_of_the_shared_memory(client, segment):
    name, _ = segment
    seen = reports(sad.to_dask(name, chunks=(100, 70)))
    assert len(seen) == 3
    assert {pid for pid, _, _ in seen} - {os.getpid()}, "ran on no worker"
    assert os.getpid() not in {pid for pid, _, _ in seen}
    # Zero-copy on the worker: each chunk is a view of the mapping, and
    # read-only by default.
    assert all(shared and not writeable for _, shared, writeable in seen)


def test_to_dask_graph_holds_no_data(client, shm_name):
    name = "shm://" + shm_name()
    a = sa.create(name, (1024, 1024))        # 8 MiB
    a[...] = 1.0
    x = sad.to_dask(name, chunks=(128, 1024))
    graph = dict(x.__dask_graph__())
    assert len(graph) == 8
    size = len(pickle.dumps(graph))
    assert size < a.nbytes / 1000, size     # a few kB against 8 MiB
    # Per task: the name and the slices, not a chunk.
    assert size < 8 * 2048, size
    assert name.encode() in pickle.dumps(graph)
    assert x.sum().compute() == a.size
    # The same for what reaches the scheduler: the optimized graph.
    (opt,) = dask.optimize(x)
    assert len(pickle.dumps(dict(opt.__dask_graph__()))) < 8 * 2048


def test_to_dask_missing_name_fails_up_front(shm_name):
    with pytest.raises(FileNotFoundError):
        sad.to_dask("shm://" + shm_name())


def test_to_dask_with_shape_and_dtype_checks_on_the_worker(client, segment):
    name, a = segment
    # No local check: what a client on a machine without the array does.
    x = sad.to_dask(name, chunks=100, shape=a.shape, dtype=a.dtype)
    np.testing.assert_array_equal(x.compute(), a)
    wrong = sad.to_dask(name, chunks=100, shape=(300, 71), dtype=a.dtype)
    with pytest.raises(ValueError, match="not the"):
        wrong.compute()
    with pytest.raises(TypeError):
        sad.to_dask(name, shape=a.shape)


@pytest.mark.filterwarnings(
    "ignore:Running on a single-machine scheduler:UserWarning")
def test_to_dask_without_distributed(segment):
    name, a = segment
    x = sad.to_dask(name, chunks=64)
    assert x.sum().compute(scheduler="threads") == a.sum()
    assert x.sum().compute(scheduler="sync") == a.sum()


def test_to_dask_is_deterministic(segment):
    name, _ = segment
    assert sad.to_dask(name, 64).name == sad.to_dask(name, 64).name
    assert sad.to_dask(name, 64).name != sad.to_dask(name, 32).name
    assert sad.to_dask(name, 64).name != sad.to_dask(name, 64, ro=False).name


def double_in_place(block):
    block *= 2          # into the shared array: the chunk is a writable view
    return np.zeros((1,) * block.ndim, dtype=np.int64) + os.getpid()


def test_map_blocks_writes_reach_the_parent(client, segment):
    name, a = segment
    want = a * 2
    x = sad.to_dask(name, chunks=(50, 70), ro=False)
    pids = x.map_blocks(double_in_place, chunks=(1, 1),
                        dtype=np.int64).compute()
    assert os.getpid() not in set(pids.flat)
    np.testing.assert_array_equal(a, want)
    np.testing.assert_array_equal(on_disk(name), want)


def test_read_only_chunks_refuse_writes(client, segment):
    name, a = segment
    before = a.copy()
    x = sad.to_dask(name, chunks=(50, 70))
    with pytest.raises(ValueError, match="read-only"):
        x.map_blocks(double_in_place, chunks=(1, 1), dtype=np.int64).compute()
    np.testing.assert_array_equal(a, before)


# ---------------------------------------------------------------- store


def fill_positions(block, block_info=None):
    loc = block_info[None]["array-location"]
    rows = np.arange(loc[0][0], loc[0][1])[:, None]
    cols = np.arange(loc[1][0], loc[1][1])[None, :]
    return rows * 1000 + cols + 0 * block


def test_store_writes_land_in_the_segment(client, shm_name):
    name = "shm://" + shm_name()
    x = da.zeros((400, 300), chunks=(100, 150), dtype=np.int64)
    x = x.map_blocks(fill_positions, dtype=np.int64)
    want = np.arange(400)[:, None] * 1000 + np.arange(300)[None, :]
    before = client.run(
        lambda dask_worker: dask_worker.transfer_outgoing_bytes_total)
    out = sad.store(x, name)
    after = client.run(
        lambda dask_worker: dask_worker.transfer_outgoing_bytes_total)
    # The workers wrote; this process reads the file with NumPy.
    np.testing.assert_array_equal(on_disk(name), want)
    np.testing.assert_array_equal(out, want)
    assert isinstance(out.base, sa.Mapping) and out.base.name == name
    assert out.flags.writeable
    # Nothing but small results moved between the workers (8 chunks of
    # 120 kB were computed, written and dropped where they were made).
    moved = sum(after.values()) - sum(before.values())
    assert moved < 20_000, moved


def test_store_from_to_dask_copies_between_segments(client, segment,
                                                    shm_name):
    name, a = segment
    dst = "shm://" + shm_name()
    out = sad.store(sad.to_dask(name, chunks=(64, 32)).T.astype("f4"), dst,
                    order="F", mode=0o640)
    np.testing.assert_array_equal(out, a.T.astype("f4"))
    desc = sa.info(dst)
    assert desc.dims == (70, 300) and desc.order == "F" and desc.mode == 0o640
    np.testing.assert_array_equal(on_disk(dst), a.T.astype("f4"))


def test_store_into_an_existing_name_fails(client, segment):
    name, a = segment
    before = a.copy()
    with pytest.raises(FileExistsError):
        sad.store(da.ones(a.shape, chunks=100), name)
    np.testing.assert_array_equal(on_disk(name), before)


def test_store_refuses_what_it_cannot_store(client, shm_name):
    name = "shm://" + shm_name()
    with pytest.raises(TypeError):
        sad.store(np.ones(3), name)
    x = da.arange(10, chunks=3)
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        sad.store(x[x > 4], name)
    assert not os.path.exists(shm_path(name))


def fail_on_third_block(block, block_info=None):
    if block_info[None]["chunk-location"][0] == 2:
        raise ZeroDivisionError("chunk 2 cannot be computed")
    return block + 1


def test_store_failure_deletes_the_segment(client, shm_name):
    name = "shm://" + shm_name()
    x = da.zeros(4000, chunks=500).map_blocks(fail_on_third_block,
                                               dtype=float)
    with pytest.raises(ZeroDivisionError, match="chunk 2"):
        sad.store(x, name)
    assert not os.path.exists(shm_path(name))
    with pytest.raises(FileNotFoundError):
        sa.info(name)
    # The same name can be used again at once.
    out = sad.store(da.ones(4000, chunks=500), name)
    assert out.sum() == 4000


@pytest.mark.filterwarnings(
    "ignore:Running on a single-machine scheduler:UserWarning")
def test_store_without_distributed(segment, shm_name):
    name, a = segment
    dst = "shm://" + shm_name()
    out = sad.store(sad.to_dask(name, 64) + 1, dst, scheduler="threads")
    np.testing.assert_array_equal(out, a + 1)


# ---------------------------------------------------------------- replicate


def load_counted(log, n):
    """The loader: records each call (one line per call) in log."""
    with open(log, "a") as f:
        f.write(f"{os.getpid()}\n")
    return np.arange(n, dtype=np.int32)


def calls(log):
    try:
        with open(log) as f:
            return f.read().split()
    except FileNotFoundError:
        return []


def test_replicate_makes_one_copy_per_host(client, shm_name, tmp_path):
    name = "shm://" + shm_name()
    log = str(tmp_path / "calls")
    workers = client.scheduler_info()["workers"]
    assert len(workers) == 2
    assert len({w["host"] for w in workers.values()}) == 1
    copies = sad.replicate(client, name, load_counted, log, n=1000)
    # One machine: one copy, loaded once, by one of the two workers.
    assert len(calls(log)) == 1
    assert len(copies) == 1
    (addr, desc), = copies.items()
    assert addr in workers
    assert desc.dims == (1000,) and desc.dtype == np.int32
    np.testing.assert_array_equal(on_disk(name), np.arange(1000))
    # Read where it is, by any worker.
    x = sad.to_dask(name, chunks=100, shape=desc.dims, dtype=desc.dtype)
    assert x.sum().compute() == np.arange(1000).sum()
    assert sad.delete(client, name) == 1
    assert not os.path.exists(shm_path(name))
    with pytest.raises(FileNotFoundError):
        sad.delete(client, name)


def test_replicate_existing_name(client, shm_name, tmp_path):
    name = "shm://" + shm_name()
    log = str(tmp_path / "calls")
    a = sa.create(name, 5, np.int32)
    a[...] = 7
    with pytest.raises(FileExistsError):
        sad.replicate(client, name, load_counted, log, 1000)
    np.testing.assert_array_equal(on_disk(name), [7] * 5)   # left alone
    copies = sad.replicate(client, name, load_counted, log, 1000,
                           exist_ok=True)
    assert [d.dims for d in copies.values()] == [(5,)]
    assert calls(log) == []       # neither call loaded anything
    np.testing.assert_array_equal(on_disk(name), [7] * 5)


def broken_loader():
    raise RuntimeError("the dataset cannot be read")


def test_replicate_loader_failure_leaves_nothing(client, shm_name):
    name = "shm://" + shm_name()
    with pytest.raises(RuntimeError, match="cannot be read"):
        sad.replicate(client, name, broken_loader)
    assert not os.path.exists(shm_path(name))


class FakeClient:
    """Workers on two machines: what client.run(_domain) would answer."""

    def __init__(self, domains):
        self.domains = domains

    def run(self, func, *args, **kwargs):
        assert func is sad._domain
        return dict(self.domains)


def test_workers_are_grouped_by_machine_and_shm():
    boot_a, boot_b = "boot-a", "boot-b"
    client = FakeClient({
        "tcp://10.0.0.2:4001": (boot_b, 25),
        "tcp://10.0.0.1:4001": (boot_a, 25),
        "tcp://10.0.0.1:4002": (boot_a, 25),
        # Same machine, another address: still the same memory.
        "tcp://192.168.0.1:4003": (boot_a, 25),
        # Same machine, a container with a /dev/shm of its own.
        "tcp://172.17.0.2:4004": (boot_a, 91),
    })
    groups = sad._groups(client, "shm://x")
    assert sorted(groups) == [
        ["tcp://10.0.0.1:4001", "tcp://10.0.0.1:4002",
         "tcp://192.168.0.1:4003"],
        ["tcp://10.0.0.2:4001"],
        ["tcp://172.17.0.2:4004"],
    ]
    with pytest.raises(RuntimeError, match="no workers"):
        sad._groups(FakeClient({}), "shm://x")


def test_all_workers_of_this_machine_share_one_domain(client):
    domains = client.run(sad._domain, "shm://x")
    assert len(set(domains.values())) == 1
    assert set(domains.values()) == {sad._domain("shm://x")}


# ---------------------------------------------------------------- delete


@needs("birth_times")
def test_delete_releases_the_workers_mappings(client, shm_name):
    name = "shm://" + shm_name()
    a = sa.create(name, (256, 1024))        # 2 MiB
    a[...] = 3
    client.run(sa.cache_clear)
    x = sad.to_dask(name, chunks=(32, 1024))
    assert x.sum().compute() == 3 * a.size
    held = client.run(lambda: sa.cache_info().nbytes)
    assert sum(held.values()) >= a.nbytes     # some worker keeps it mapped
    del a
    assert sad.delete(client, name) == 1
    assert not os.path.exists(shm_path(name))
    held = client.run(lambda: sa.cache_info().nbytes)
    assert sum(held.values()) == 0, held
