"""Typed errors of tsdiff.

Every error the package raises on purpose is a :class:`TsdiffError`, which is also a
:class:`ValueError`, so ``except ValueError`` in existing scripts keeps working. Errors about
input data carry the offending ``column`` and/or ``row`` as attributes and in the message.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class TsdiffError(ValueError):
    """Base class of every error tsdiff raises on purpose."""


class InputError(TsdiffError):
    """The data given to a detector cannot be used as it is.

    Parameters
    ----------
    message
        What is wrong, in one line.
    column
        The column at fault, when one is.
    row
        The row (index label) at fault, when one is.
    """

    def __init__(self, message: str, *, column: Any = None, row: Any = None) -> None:
        super().__init__(message)
        self.column = column
        self.row = row


class InputTypeError(InputError):
    """The input is not a DataFrame, a Series or a 2-d array of numbers."""


class EmptyInputError(InputError):
    """The input has no rows or no columns."""


class NonNumericColumnError(InputError, TypeError):
    """A column holds values that are not numbers (also a :class:`TypeError`, as NumPy's own
    conversion error is)."""


class AllNaNColumnError(InputError):
    """A column holds no value at all (all NaN)."""


class SparseColumnError(AllNaNColumnError):
    """A column holds too few values among the rows a model learns from (a series that appeared
    near the end of the fitted range, say) to learn anything about it."""


class InfiniteValueError(InputError):
    """A cell holds +inf or -inf."""


class ExtremeValueError(InputError):
    """A cell holds a finite value beyond ``tsdiff.frame.MAX_ABS_VALUE`` (1e100) in magnitude:
    no metric is that large, and arithmetic on it overflows."""


class DuplicateTimestampError(InputError):
    """Two rows share one index label."""


class UnsortedIndexError(InputError):
    """The time index goes backwards."""


class LateRowError(InputError):
    """A streamed row whose timestamp is not after the last row already received."""


class DuplicateColumnError(InputError):
    """Two columns share one name."""


class TooFewRowsError(InputError):
    """Fewer rows than a detector needs (e.g. fewer than one window)."""

    def __init__(self, n_rows: int, needed: int, what: str = "rows") -> None:
        got = "one sample (row)" if n_rows == 1 else f"{n_rows} rows"
        super().__init__(f"got {got} but at least {needed} are needed ({what})")
        self.n_rows = n_rows
        self.needed = needed


class ColumnMismatchError(InputError):
    """Columns at scoring time differ from those seen at fit time."""

    def __init__(self, missing: Sequence[Any], extra: Sequence[Any], prefix: str = "") -> None:
        parts = [prefix] if prefix else []
        if missing:
            parts.append(f"missing column(s) {_names(missing)}")
        if extra:
            parts.append(f"unexpected column(s) {_names(extra)}")
        super().__init__(
            "columns differ from those seen at fit time: " + "; ".join(parts),
            column=(list(missing) + list(extra))[0] if (missing or extra) else None,
        )
        self.missing = list(missing)
        self.extra = list(extra)


class NotFittedError(TsdiffError):
    """A method that needs a fitted detector was called before ``fit``.

    A detector raises it as :class:`tsdiff.base.NotFittedDetectorError`, which is also
    scikit-learn's ``NotFittedError`` (kept out of this module: importing scikit-learn costs most
    of a second, which a command that only reports an error should not pay)."""


class DriftWarning(UserWarning):
    """Far more rows flagged than the model's ``risk``: many anomalies, or data that drifted from
    what the model was fitted on (refit it, or let a live monitor adapt: ``tsdiff watch --adapt``,
    ``--refit-after``)."""


class ParameterError(TsdiffError):
    """A constructor parameter has a value the detector cannot use."""


class ModelFormatError(TsdiffError):
    """A saved model directory is missing, corrupt, foreign or from an incompatible version."""


class SourceError(TsdiffError):
    """A metrics source (a Prometheus server) failed or answered with an error; ``query`` names
    the query at fault."""

    def __init__(self, message: str, *, query: str | None = None) -> None:
        super().__init__(f"query {query!r}: {message}" if query is not None else message)
        self.query = query


class DatasetError(TsdiffError):
    """A dataset file is missing or not in the expected format."""


class MissingDependencyError(TsdiffError, ImportError):
    """An optional dependency (an extra such as ``tsdiff[tsai]``) is not installed or cannot load."""


def fmt_label(label: Any) -> str:
    """A row or column label as users wrote it: ``'cpu'``, ``42``, ``2024-01-01 00:05:00``."""
    if hasattr(label, "item") and not isinstance(label, str):
        try:
            label = label.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(label, str):
        return repr(label)
    return str(label)


def _names(items: Sequence[Any], limit: int = 5) -> str:
    shown = ", ".join(fmt_label(x) for x in list(items)[:limit])
    more = len(items) - limit
    return shown + (f" and {more} more" if more > 0 else "")
