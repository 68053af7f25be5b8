"""Share NumPy arrays between processes by name.

Arrays live in POSIX shared memory (``shm://NAME``, or a bare ``NAME``) or in
memory-mapped files (``file://PATH``); every segment is a ``.npy`` file with
page-aligned data, so ``np.load(path, mmap_mode='r')`` reads it too.

>>> import SharedArray as sa
>>> a = sa.create("shm://example", (3, 4), dtype="f4")   # doctest: +SKIP
>>> b = sa.attach("shm://example")                        # doctest: +SKIP
>>> sa.delete("shm://example")                            # doctest: +SKIP
"""

from typing import NamedTuple

from . import _reduce
from ._core import (
    MS_ASYNC,
    MS_INVALIDATE,
    MS_SYNC,
    ArrayDesc,
    ArrayName,
    Mapping,
    attach,
    cache_clear,
    cache_limits,
    create,
    delete,
    from_array,
    info,
    list,
)
from ._core import cache_info as _cache_info
from ._temporary import TemporaryArray
from ._version import __version__ as __version__

_reduce.register()


class CacheInfo(NamedTuple):
    """Counters and budget of this process's mapping cache."""

    hits: int         # attaches served from the cache
    misses: int       # attaches that mapped the file
    entries: int      # mappings the cache keeps alive
    nbytes: int       # their mapped size
    max_entries: int  # the budget (cache_limits)
    max_bytes: int


def cache_info() -> CacheInfo:
    """Counters and budget of this process's mapping cache."""
    return CacheInfo(*_cache_info())


__all__ = [
    "create",
    "from_array",
    "attach",
    "delete",
    "list",
    "info",
    "TemporaryArray",
    "cache_info",
    "cache_clear",
    "cache_limits",
    "CacheInfo",
    "ArrayDesc",
    "ArrayName",
    "Mapping",
    "MS_ASYNC",
    "MS_SYNC",
    "MS_INVALIDATE",
]
