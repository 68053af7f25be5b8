"""TemporaryArray: a shared array that is deleted when the block ends.

Named after tempfile.TemporaryDirectory: it creates on construction,
``with`` gives the array, and leaving the block (normally, by an exception
or by KeyboardInterrupt) deletes the name; cleanup() does the same by hand.
Only the array it made or attached is deleted: if the name was deleted and
made again by someone else meanwhile, the newcomer is left alone.
"""

import uuid

from . import _core


class TemporaryArray:
    """Create (or, with exist_ok=True, attach) an array; delete it on exit.

    >>> with TemporaryArray(None, (1000, 3), "f8") as a:   # doctest: +SKIP
    ...     pool.map(work, [a[i::4] for i in range(4)])

    name is as for create(); None makes a unique shm:// name, found in
    ``.name``.  Arrays and views of it stay valid after the block: only the
    name is removed, as delete() does.
    """

    def __init__(self, name, shape, dtype=float, order="C", mode=0o600,
                 exist_ok=False):
        if name is None:
            name = f"shm://sa-tmp-{uuid.uuid4().hex}"
        self.name = name
        self.array = _core.create(name, shape, dtype, order, mode,
                                  exist_ok=exist_ok)
        self._identity = self.array.base._identity

    def __enter__(self):
        return self.array

    def __exit__(self, *exc_info):
        self.cleanup()

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}>"

    def cleanup(self):
        """Delete the name if it still is this array; idempotent."""
        identity, self._identity = self._identity, None
        if identity is None:
            return
        try:
            if _core._identity_of(self.name) != identity:
                return  # deleted, and perhaps made again by someone else
            _core.delete(self.name)
        except FileNotFoundError:
            pass
