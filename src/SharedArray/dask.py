"""Shared arrays as Dask arrays, and Dask arrays into shared arrays.

    pip install 'SharedArray[dask]'

* :func:`to_dask` gives a ``dask.array`` over a shared array.  Its graph holds
  only the name, shape, dtype and one slice per chunk: each task attaches the
  name on the worker that runs it and returns its chunk as a view of the
  shared memory (no copy; the mapping cache makes the attach cost one
  ``statx``).
* :func:`store` is ``dask.array.store`` into a new shared array: each worker
  writes the chunks it computes straight into the segment, by name.
* :func:`replicate` puts one copy of a dataset on every machine of a
  ``distributed`` cluster (once per machine, not once per worker), for
  :func:`to_dask` to read there; :func:`delete` removes such copies.

Dask is imported only when these functions are called: ``import SharedArray``
never imports it, and neither does ``import SharedArray.dask``.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import sys
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _core

__all__ = ["delete", "replicate", "store", "to_dask"]


def _absolute(name: str) -> str:
    """A relative ``file://`` path names a different file in a worker whose
    current directory differs: make it absolute, as the client sees it."""
    if name.startswith("file://"):
        return "file://" + os.path.abspath(_core._resolve(name))
    return name


# ---------------------------------------------------------------------------
# to_dask


def _attach_checked(name: str, shape: tuple[int, ...], dtype: np.dtype[Any],
                    ro: bool) -> np.ndarray:
    """On the worker: the shared array, if it still is what the graph says."""
    a = _core.attach(name, ro=ro)
    if a.shape != shape or a.dtype != dtype:
        raise ValueError(
            f"{name!r} is now an array of shape {a.shape} and dtype "
            f"{a.dtype}, not the {shape} {dtype} the dask array was made for")
    return a


class _Segment:
    """What the graph of :func:`to_dask` holds: a name, not data.

    Dask slices it like an array (``getter(segment, slices)``); the slicing
    happens on the worker, which attaches the name and returns a view.
    """

    def __init__(self, name: str, shape: tuple[int, ...], dtype: np.dtype[Any],
                 ro: bool, identity: Any = None) -> None:
        self.name = name
        self.shape = shape
        self.dtype = dtype
        self.ro = ro
        self.identity = identity  # only for the token, never checked

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, index: Any) -> Any:
        return _attach_checked(self.name, self.shape, self.dtype,
                               self.ro)[index]

    def __dask_tokenize__(self) -> Any:
        return ("SharedArray.dask._Segment", self.name, self.shape,
                self.dtype.str, self.dtype.descr, self.ro, self.identity)

    def __repr__(self) -> str:
        return (f"<shared array {self.name!r} shape={self.shape} "
                f"dtype={self.dtype} ro={self.ro}>")


def to_dask(name: str, chunks: Any = "auto", *, ro: bool = True,
            shape: Any = None, dtype: Any = None) -> Any:
    """A dask array over the shared array ``name``, read on the workers.

    ``chunks`` is anything ``dask.array.from_array`` accepts (``"auto"``, a
    block shape, explicit chunks) and is normalized as Dask does.  Each task
    of the graph attaches ``name`` where it runs (through that process's
    mapping cache) and returns its chunk as a view of the shared memory, so
    the graph carries no array data and a worker copies nothing.  The
    workers must see the same name: on one machine, any worker does; on
    several, see :func:`replicate`.

    ``ro=True`` (the default) attaches read-only: Dask treats chunks as
    immutable values, and a task that tried to modify one in place would
    otherwise write into the shared array.  ``ro=False`` gives writable
    chunks, for ``map_blocks`` functions that mean to write into the
    shared array.

    The name is checked at once with :func:`SharedArray.info`, which gives
    the shape and dtype.  A client on a machine that does not hold the array
    (a cluster of other machines) passes ``shape`` and ``dtype`` instead, and
    then nothing is checked here.  Either way each task checks that the array
    it attaches still has that shape and dtype, and raises ``ValueError`` if
    not.
    """
    import dask.array as da
    from dask.base import tokenize

    name = _absolute(name)
    identity = None
    if shape is None and dtype is None:
        desc = _core.info(name)
        shape, dtype = desc.dims, desc.dtype
        try:
            identity = _core._identity_of(name)
        except OSError:
            pass
    elif shape is None or dtype is None:
        raise TypeError("give both shape and dtype, or neither")
    shape = (shape,) if isinstance(shape, int) else tuple(map(int, shape))
    segment = _Segment(name, shape, np.dtype(dtype), bool(ro), identity)
    meta = np.empty((0,) * segment.ndim, segment.dtype)
    return da.from_array(
        segment,
        chunks=chunks,
        name="sharedarray-" + tokenize(segment, chunks),
        lock=False,
        asarray=True,
        meta=meta,
        # The segment (a few hundred bytes) goes into each task, so a task
        # needs no other key: nothing but the chunk's result moves.
        inline_array=True,
    )


# ---------------------------------------------------------------------------
# store


class _Writer:
    """The target :func:`store` gives ``dask.array.store``: ``target[region] =
    chunk`` runs on the worker, which attaches the segment writable and
    assigns into it."""

    def __init__(self, name: str, identity: Any) -> None:
        self.name = name
        self.identity = identity

    def __setitem__(self, index: Any, value: Any) -> None:
        a = _core.attach(self.name)
        # The very segment store() made, not one made since under its name
        # (or one of the same name on another machine).
        if a.base._identity != self.identity:
            raise OSError(
                errno.ESTALE,
                "the array store() created was deleted or replaced, or this "
                "worker runs on another machine", self.name)
        a[index] = value

    def __dask_tokenize__(self) -> Any:
        return ("SharedArray.dask._Writer", self.name, self.identity)

    def __repr__(self) -> str:
        return f"<shared array writer {self.name!r}>"


def store(x: Any, name: str, *, order: str = "C", mode: int = 0o600,
          **compute_kwargs: Any) -> np.ndarray:
    """Compute the dask array ``x`` into a new shared array ``name``.

    The segment is created here with :func:`SharedArray.create` (shape and
    dtype of ``x``; ``order`` and ``mode`` as for ``create``), then ``x`` is
    computed with ``dask.array.store``: each task attaches the name on its
    worker and assigns its chunk into the segment, so no chunk travels to
    this process.  ``compute_kwargs`` go to ``dask.compute`` (for instance
    ``scheduler=``).  Returns the created array, as ``create`` does.

    The workers must share this machine's ``/dev/shm`` (or file system, for
    ``file://``): a task that finds another array under the name raises
    ``OSError(ESTALE)``.  If the computation fails (or is interrupted), the
    segment is deleted, the workers' mapping caches let go of it, and the
    error is raised.

    Raises ``TypeError`` if ``x`` is not a dask array, ``ValueError`` if its
    shape is not known (call ``x.compute_chunk_sizes()``), and what
    ``create`` raises (``FileExistsError`` if the name exists).
    """
    import dask
    import dask.array as da

    if not isinstance(x, da.Array):
        raise TypeError(f"store() takes a dask array, not {type(x).__name__}")
    if any(isinstance(n, float) and math.isnan(n) for n in x.shape):
        raise ValueError(
            f"the shape of x is not known ({x.shape}); call "
            "x.compute_chunk_sizes() first")
    name = _absolute(name)
    out = _core.create(name, x.shape, x.dtype, order=order, mode=mode)
    try:
        target = _Writer(name, out.base._identity)
        stored = da.store(x, target, lock=False, compute=False)
        dask.compute(stored, **compute_kwargs)
    except BaseException:
        _discard(name)
        raise
    return out


def _discard(name: str) -> None:
    """After a failed store(): delete the segment and release the memory the
    workers' mapping caches keep of it.  Never raises."""
    try:
        _core.delete(name)
    except (OSError, ValueError):
        pass
    client = _current_client()
    if client is not None:
        try:
            client.run(_forget_here, name)
        except Exception:
            logging.getLogger(__name__).warning(
                "the workers' mapping caches may still hold %r", name,
                exc_info=True)


def _current_client() -> Any:
    if "distributed" not in sys.modules:
        return None
    from distributed import default_client
    try:
        return default_client()
    except ValueError:
        return None


def _forget_here(name: str) -> None:
    """Make this process's mapping cache let go of a deleted name.

    An attach finds a cached mapping stale once its name is gone, and drops
    it; ``FileNotFoundError`` is the expected outcome.  If the name exists
    again (made anew meanwhile), nothing is done.
    """
    try:
        _core.info(name)
        return
    except FileNotFoundError:
        pass
    except (OSError, ValueError):
        return
    for ro in (True, False):
        try:
            _core.attach(name, ro=ro)
        except (OSError, ValueError):
            pass


# ---------------------------------------------------------------------------
# Several machines: replicate, delete


def _domain(name: str) -> tuple[str, Any]:
    """On a worker: which memory a name lives in, as a hashable key.

    Two workers see the same array under ``name`` when they run under the
    same kernel (same boot id: same machine, containers included) and
    ``name``'s directory is the same file system there (same device: a
    container with a private ``/dev/shm`` has a tmpfs of its own).  This is
    finer than the worker's host address, which differs for workers of one
    machine that listen on different interfaces.
    """
    with open("/proc/sys/kernel/random/boot_id") as f:
        boot = f.read().strip()
    path = _core._resolve(name)
    try:
        dev = os.stat(os.path.dirname(os.path.abspath(path))).st_dev
    except OSError:
        dev = None
    return boot, dev


def _groups(client: Any, name: str) -> list[list[str]]:
    """The client's workers, grouped by the memory they see ``name`` in."""
    keys = client.run(_domain, name)
    if not keys:
        raise RuntimeError("the dask cluster has no workers")
    groups: dict[Any, list[str]] = {}
    for addr in sorted(keys):
        groups.setdefault(keys[addr], []).append(addr)
    return list(groups.values())


def _load_here(name: str, loader: Callable[..., Any], args: tuple[Any, ...],
               kwargs: dict[str, Any], exist_ok: bool,
               mode: int) -> tuple[str, Any, bool]:
    """On one worker of a machine: make that machine's copy."""
    from distributed import get_worker

    addr = get_worker().address
    try:
        desc = _core.info(name)
    except FileNotFoundError:
        pass
    else:  # not worth loading
        if exist_ok:
            return addr, desc, False
        raise FileExistsError(errno.EEXIST, "File exists", name)
    data = loader(*args, **kwargs)
    try:
        _core.from_array(name, data, mode=mode)
    except FileExistsError:
        if not exist_ok:
            raise
        return addr, _core.info(name), False
    finally:
        del data
    return addr, _core.info(name), True


def _delete_here(name: str) -> bool:
    try:
        _core.delete(name)
    except FileNotFoundError:
        return False
    return True


def replicate(client: Any, name: str, loader: Callable[..., Any], *args: Any,
              exist_ok: bool = False, mode: int = 0o600,
              **kwargs: Any) -> dict[str, Any]:
    """Give every machine of the cluster its own copy of a dataset, once.

    The workers of ``client`` are grouped by the shared memory they see
    (machine, and ``/dev/shm`` file system; see :func:`_domain`); on one
    worker of each group, ``loader(*args, **kwargs)`` is called and its
    result (anything ``numpy.asarray`` takes) copied into a new shared array
    ``name`` with :func:`SharedArray.from_array`.  The loads are tasks
    restricted to the group's workers, run in parallel in the workers'
    thread pools.  Afterwards ``to_dask(name, shape=..., dtype=...)`` reads
    the copy of whichever machine a task runs on.

    The loader's result is a private copy until ``from_array`` has copied it
    into the segment: return ``numpy.load(path, mmap_mode="r")`` to stream a
    ``.npy`` file instead of holding it twice.

    With ``exist_ok=True``, a machine that already has ``name`` keeps it (the
    loader is not called there); otherwise ``FileExistsError`` is raised.  If
    any load fails, the copies this call made are deleted and the error is
    raised.

    Returns ``{worker address: ArrayDesc}``, one entry per copy (made or
    found), from the worker that holds it.
    """
    from distributed import wait

    groups = _groups(client, name)
    token = uuid.uuid4().hex
    futures = [
        client.submit(_load_here, name, loader, args, kwargs, exist_ok, mode,
                      workers=addrs, allow_other_workers=False, pure=False,
                      key=f"sharedarray-replicate-{token}-{i}")
        for i, addrs in enumerate(groups)
    ]
    wait(futures)
    failed = [f for f in futures if f.status != "finished"]
    if failed:
        made = [f.result() for f in futures if f.status == "finished"]
        made = [addr for addr, _, created in made if created]
        if made:
            client.run(_delete_here, name, workers=made)
        failed[0].result()  # raises the worker's exception
    return {addr: desc for addr, desc, _ in (f.result() for f in futures)}


def delete(client: Any, name: str) -> int:
    """Delete ``name`` on every machine of the cluster, once per machine.

    The counterpart of :func:`replicate`, and the way to delete an array the
    workers have attached: besides removing the name, it makes every
    worker's mapping cache (and this process's) let go of the array, so its
    memory is given back as soon as no task uses it.  (A plain
    ``SharedArray.delete`` leaves the workers' caches holding it until they
    evict it.)

    Returns the number of copies deleted; raises ``FileNotFoundError`` if
    no worker's machine had one.
    """
    groups = _groups(client, name)
    done = client.run(_delete_here, name, workers=[g[0] for g in groups])
    client.run(_forget_here, name)
    _forget_here(name)
    n = sum(bool(v) for v in done.values())
    if n == 0:
        raise FileNotFoundError(errno.ENOENT,
                                "no worker's machine has the array", name)
    return n
