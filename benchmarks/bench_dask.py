"""The same data summed on a local dask cluster, three ways.

    python benchmarks/bench_dask.py [--mib 256] [--chunk-mib 32] [--rounds 7]

A LocalCluster of 2 worker processes (1 thread each) sums MIB MiB of float64
in CHUNK-MIB chunks.  Contenders, interleaved round by round:

  from_array      da.from_array(a) of a plain NumPy array in this process:
                  the chunks travel inside the graph, client -> scheduler ->
                  workers
  scatter         client.scatter(chunks, direct=True) (straight to the
                  workers, not through the scheduler), then a dask array
                  built from the futures (da.from_delayed); timed with the
                  scatter, and also "compute only" on data scattered
                  beforehand
  to_dask         SharedArray.dask.to_dask(name) of a shared array holding
                  the same data (made once with from_array, before the
                  rounds): each task attaches the name on its worker and
                  returns a view

Each round times x.sum().compute() end to end: building the dask array (and
for scatter, the scatter), graph submission, the computation and the result
coming back.  Bytes reported:

  graph           len(pickle.dumps(dict(x.sum().__dask_graph__()))): what
                  the client has to ship to the scheduler
  loopback        bytes sent over the loopback interface during the round
                  (/proc/net/dev, "lo" transmit counter): every message
                  between client, scheduler and workers, data included, each
                  counted once.  Anything else using 127.0.0.1 at the same
                  time is counted too.
  worker-worker   growth of the workers' transfer_outgoing_bytes_total:
                  data fetched by one worker from another

Times are medians of the rounds; the first round of to_dask, in which the
workers map the segment and fault its pages in, is shown on its own.
"""

import argparse
import os
import pickle
import platform
import statistics
import sys
import time

import dask
import dask.array as da
import numpy as np
from distributed import Client, LocalCluster, wait

import SharedArray as sa
import SharedArray.dask as sad


def lo_bytes():
    with open("/proc/net/dev") as f:
        for line in f:
            iface, _, rest = line.partition(":")
            if iface.strip() == "lo":
                return int(rest.split()[8])   # transmit bytes
    return 0


def worker_bytes(client):
    return sum(client.run(
        lambda dask_worker: dask_worker.transfer_outgoing_bytes_total
    ).values())


def fmt_bytes(n):
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mib", type=int, default=256)
    p.add_argument("--chunk-mib", type=int, default=32)
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args()

    n = args.mib * (1 << 20) // 8
    step = args.chunk_mib * (1 << 20) // 8
    plain = np.random.default_rng(0).random(n)
    want = plain.sum()
    name = f"shm://sharedarray-bench-dask-{os.getpid()}"

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    client = Client(cluster)
    try:
        t = time.perf_counter()
        sa.from_array(name, plain)
        setup_shared = time.perf_counter() - t
        slices = [slice(i, min(i + step, n)) for i in range(0, n, step)]

        def from_futures(futures):
            return da.concatenate([
                da.from_delayed(f, shape=(s.stop - s.start,), dtype=plain.dtype)
                for f, s in zip(futures, slices)])

        def run_from_array():
            return da.from_array(plain, chunks=step).sum().compute()

        def run_scatter():
            futures = client.scatter(
                [plain[s] for s in slices], direct=True)
            return from_futures(futures).sum().compute()

        scattered = []

        def run_scatter_compute_only():
            return from_futures(scattered).sum().compute()

        def run_to_dask():
            return sad.to_dask(name, chunks=step).sum().compute()

        def before_compute_only():
            scattered[:] = client.scatter(
                [plain[s] for s in slices], direct=True)
            wait(scattered)

        def after_compute_only():
            scattered.clear()

        def settle():
            """Wait until the workers hold no data: releasing scattered
            chunks must not overlap the next contender's round."""
            while any(client.run(
                    lambda dask_worker: len(dask_worker.data)).values()):
                time.sleep(0.01)

        contenders = {
            "from_array (plain NumPy array)": (run_from_array, None, None),
            "scatter + from futures (incl. scatter)": (run_scatter, None,
                                                       None),
            "scatter, compute only (data already on workers)": (
                run_scatter_compute_only, before_compute_only,
                after_compute_only),
            "to_dask (SharedArray)": (run_to_dask, None, None),
        }
        graphs = {
            "from_array (plain NumPy array)": da.from_array(
                plain, chunks=step).sum(),
            "to_dask (SharedArray)": sad.to_dask(name, chunks=step).sum(),
        }
        before_compute_only()
        graphs["scatter + from futures (incl. scatter)"] = from_futures(
            scattered).sum()
        graphs["scatter, compute only (data already on workers)"] = graphs[
            "scatter + from futures (incl. scatter)"]
        graph_size = {k: len(pickle.dumps(dict(v.__dask_graph__())))
                      for k, v in graphs.items()}
        del graphs
        after_compute_only()

        times = {k: [] for k in contenders}
        lo = {k: [] for k in contenders}
        w2w = {k: [] for k in contenders}
        for _ in range(args.rounds):
            for label, (job, pre, post) in contenders.items():
                if pre:
                    pre()
                wb, lb = worker_bytes(client), lo_bytes()
                t = time.perf_counter()
                got = job()
                times[label].append(time.perf_counter() - t)
                lo[label].append(lo_bytes() - lb)
                w2w[label].append(worker_bytes(client) - wb)
                if post:
                    post()
                settle()
                assert np.isclose(got, want), (label, got, want)
    finally:
        client.close()
        cluster.close()
        sa.delete(name)

    med = {k: statistics.median(v) for k, v in times.items()}
    ref = med["to_dask (SharedArray)"]
    print(f"{args.mib} MiB float64 in {len(slices)} chunks of "
          f"{args.chunk_mib} MiB, x.sum().compute() on a LocalCluster of 2 "
          f"worker processes; median of {args.rounds} interleaved rounds. "
          f"{os.cpu_count()} CPUs, {platform.machine()}, Python "
          f"{sys.version.split()[0]}, NumPy {np.__version__}, dask "
          f"{dask.__version__}. Making the shared array (sa.from_array, "
          f"once): {setup_shared * 1e3:.0f} ms; first to_dask round "
          f"(workers map the segment): "
          f"{times['to_dask (SharedArray)'][0] * 1e3:.1f} ms.\n")
    print("| contender | median time | time / to_dask | graph (pickled) "
          "| loopback bytes per round | worker-to-worker bytes |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, m in med.items():
        print(f"| {label} | {m * 1e3:.1f} ms | {m / ref:.2f}x "
              f"| {fmt_bytes(graph_size[label])} "
              f"| {fmt_bytes(statistics.median(lo[label]))} "
              f"| {fmt_bytes(statistics.median(w2w[label]))} |")


if __name__ == "__main__":
    main()
