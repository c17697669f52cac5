"""Checks of a loaded model's state: every array the right shape, finite, in range, and consistent.

A saved model is data from disk: a hand-edited or crafted folder must be refused with
:class:`~tsdiff.errors.ModelFormatError` before it scores anything, never load and score wrongly,
hang, or exhaust memory. Each detector's ``_check_state`` calls these helpers after loading.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tsdiff.errors import ModelFormatError


def require(ok: Any, message: str) -> None:
    """Refuse the saved model with ``message`` unless ``ok``."""
    if not ok:
        raise ModelFormatError(f"the saved model {message}")


def check_array(
    name: str,
    value: Any,
    shape: Sequence[int | None] | None = None,
    *,
    integer: bool = False,
    finite: bool = True,
    positive: bool = False,
    low: float | None = None,
    high: float | None = None,
) -> np.ndarray:
    """``value`` as an array, refused unless it has ``shape`` (None entries: any length), holds
    integers when ``integer``, only finite values when ``finite``, only values > 0 when
    ``positive``, and values within [``low``, ``high``]."""
    require(value is not None, f"has no array {name!r}")
    arr = np.asarray(value)
    require(
        arr.dtype.kind in "iub" if integer else arr.dtype.kind in "iubf", f"array {name!r} is not numeric"
    )
    if shape is not None:
        fits = arr.ndim == len(shape) and all(
            want is None or got == want for got, want in zip(arr.shape, shape, strict=True)
        )
        require(fits, f"array {name!r} has shape {arr.shape}, expected {tuple(shape)}")
    if arr.size:
        if finite or positive or low is not None or high is not None:
            require(np.isfinite(arr).all(), f"array {name!r} holds NaN or infinite values")
        if positive:
            require((arr > 0).all(), f"array {name!r} holds values <= 0")
        if low is not None:
            require(arr.min() >= low, f"array {name!r} holds {arr.min()}, below {low}")
        if high is not None:
            require(arr.max() <= high, f"array {name!r} holds {arr.max()}, above {high}")
    return arr


def check_int(name: str, value: Any, low: int, high: int) -> int:
    """``value`` as an int in [``low``, ``high``]."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and low <= int(value) <= high
    require(ok, f"{name} is {value!r}, expected an integer in [{low}, {high}]")
    return int(value)


def check_trees(name: str, left: Any, right: Any, roots: Any, leaf: np.ndarray | None = None) -> None:
    """Flattened trees that a walk from each root always leaves: every inner node's children lie
    after it in the arrays (as trees are built, depth first) and inside them, so no cycle exists.

    ``leaf`` marks the leaves (default: ``left < 0``); a leaf's children are not followed.
    """
    left = check_array(f"{name}.left", left, (None,), integer=True)
    right = check_array(f"{name}.right", right, (len(left),), integer=True)
    roots = check_array(f"{name}.roots", roots, (None,), integer=True, low=0, high=max(len(left) - 1, 0))
    require(len(left) or not len(roots), f"{name} has roots but no nodes")
    inner = ~leaf if leaf is not None else left >= 0
    nodes = np.arange(len(left))
    for child in (left, right):
        ok = (child[inner] > nodes[inner]) & (child[inner] < len(left))
        require(ok.all(), f"{name}: a node's child is not a later node of its tree (a cycle or a bad index)")
