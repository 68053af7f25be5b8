"""The .npy descr for dtypes that are more than a plain string.

The C core writes and reads plain descrs ('<f8', '|S10', '<M8[ns]') itself.
Structured, nested and subarray dtypes are described and parsed here with
NumPy's own .npy code, so they round-trip exactly as ``np.save`` and
``np.load`` would; header text is parsed with ``ast.literal_eval``, never
evaluated.
"""

import ast

import numpy as np
from numpy.lib import format as _npy_format


def descr_literal(dtype: np.dtype) -> str:
    """Python literal of ``dtype``'s .npy descr; TypeError if it can't round-trip."""
    try:
        text = repr(_npy_format.dtype_to_descr(dtype))
    except ValueError as exc:
        # e.g. overlapping or out-of-order fields: NumPy has no descr for
        # them, so such a dtype cannot be stored, like an object dtype.
        raise TypeError(f"dtype {dtype!r} has no .npy description: {exc}") from exc
    try:
        back = dtype_from_literal(text)
    except (ValueError, TypeError, SyntaxError) as exc:
        raise TypeError(f"dtype {dtype!r} has no .npy description") from exc
    if back != dtype:
        raise TypeError(
            f"dtype {dtype!r} does not survive a .npy header "
            f"(it would come back as {back!r})"
        )
    return text


def dtype_from_literal(text: str) -> np.dtype:
    """The dtype for a descr literal read from a header (untrusted text)."""
    try:
        literal = ast.literal_eval(text)
    except (MemoryError, RecursionError) as exc:
        # CPython's parser reports deep nesting ("[[[[...", "----1") as
        # MemoryError or RecursionError; in a header that is corruption.
        raise ValueError("descr is nested too deeply") from exc
    return _npy_format.descr_to_dtype(literal)
