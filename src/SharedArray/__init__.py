"""Share NumPy arrays between processes by name.

Arrays live in POSIX shared memory (``shm://NAME``, or a bare ``NAME``) or in
memory-mapped files (``file://PATH``); every segment is a ``.npy`` file with
page-aligned data, so ``np.load(path, mmap_mode='r')`` reads it too.

>>> import SharedArray as sa
>>> a = sa.create("shm://example", (3, 4), dtype="f4")   # doctest: +SKIP
>>> b = sa.attach("shm://example")                        # doctest: +SKIP
>>> sa.delete("shm://example")                            # doctest: +SKIP
"""

from ._core import (
    MS_ASYNC,
    MS_INVALIDATE,
    MS_SYNC,
    ArrayDesc,
    Mapping,
    attach,
    create,
    delete,
    from_array,
    info,
    list,
)

from . import _reduce

_reduce.register()

__version__ = "4.0.0.dev0"

__all__ = [
    "create",
    "from_array",
    "attach",
    "delete",
    "list",
    "info",
    "ArrayDesc",
    "Mapping",
    "MS_ASYNC",
    "MS_SYNC",
    "MS_INVALIDATE",
]
