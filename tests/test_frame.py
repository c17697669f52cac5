"""Input contract: validation, column matching, scaling and windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsdiff import errors
from tsdiff.frame import (
    RobustScaler,
    align_columns,
    fill_missing,
    sliding_windows,
    spread_to_rows,
    validate_frame,
    window_starts,
    windows_to_rows,
)


def test_dataframe_kept_with_nan_mask():
    idx = pd.date_range("2024-01-01", periods=4, freq="5min")
    df = pd.DataFrame(
        {"cpu": [1.0, None, 3.0, 4.0], "mem": [1, 2, 3, 4], "ok": [True, False, True, True]}, index=idx
    )
    frame = validate_frame(df)
    assert frame.index.equals(idx) and list(frame.columns) == ["cpu", "mem", "ok"]
    assert frame.values.dtype == np.float64
    np.testing.assert_array_equal(frame.missing[:, 0], [False, True, False, False])
    assert frame.values[1, 2] == 0.0 and frame.named


def test_numeric_strings_and_nullable_dtypes_accepted():
    df = pd.DataFrame({"a": ["1.5", "2", None], "b": pd.array([1, None, 3], dtype="Int64")})
    frame = validate_frame(df)
    np.testing.assert_array_equal(frame.missing, [[False, False], [False, True], [True, False]])
    assert frame.values[0, 0] == 1.5


def test_a_series_is_one_column_and_a_1d_array_is_refused():
    assert validate_frame(pd.Series([1.0, 2.0], name="x")).columns.tolist() == ["x"]
    assert validate_frame(np.arange(5.0)[:, None]).values.shape == (5, 1)
    # one row of five metrics or five rows of one? scikit-learn's convention: say which
    for flat in (np.arange(5.0), [1.0, 2.0, 3.0]):
        with pytest.raises(errors.InputTypeError, match=r"1-d .* Reshape your data"):
            validate_frame(flat)


def test_input_errors_speak_scikit_learns_language():
    from scipy import sparse

    with pytest.raises(errors.InputTypeError, match="sparse input"):
        validate_frame(sparse.csr_matrix(np.eye(3)))
    with pytest.raises(errors.NonNumericColumnError, match="Complex data not supported"):
        validate_frame(np.ones((3, 2), dtype=complex))
    with pytest.raises(TypeError, match=r"argument must be .* string.* number"):
        validate_frame(np.array([[1.0], [{"foo": "bar"}]], dtype=object))
    with pytest.raises(errors.EmptyInputError, match=r"0 feature\(s\) \(shape=\(12, 0\)\)"):
        validate_frame(np.empty((12, 0)))
    with pytest.raises(errors.TooFewRowsError, match="got one sample"):
        validate_frame(np.ones((1, 2)), min_rows=2)


@pytest.mark.parametrize(
    ("data", "error", "column", "row"),
    [
        (pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "3"]}), errors.NonNumericColumnError, "b", 0),
        (pd.DataFrame({"a": [1.0, 2.0], "b": [np.nan, np.nan]}), errors.AllNaNColumnError, "b", None),
        (pd.DataFrame({"a": [1.0, -np.inf]}, index=[10, 20]), errors.InfiniteValueError, "a", 20),
        (
            pd.DataFrame({"t": pd.date_range("2024", periods=2), "a": [1, 2]}),
            errors.NonNumericColumnError,
            "t",
            None,
        ),
        (pd.DataFrame({"a": pd.Categorical([1, 2])}), errors.NonNumericColumnError, "a", None),
        (pd.DataFrame({"a": [1.0, 2.0]}, index=[5, 5]), errors.DuplicateTimestampError, None, 5),
        (pd.DataFrame({"a": [1.0, 2.0, 3.0]}, index=[1, 3, 2]), errors.UnsortedIndexError, None, 2),
        (pd.DataFrame([[1.0, 2.0]], columns=["a", "a"]), errors.DuplicateColumnError, "a", None),
        (pd.DataFrame({"a": []}), errors.EmptyInputError, None, None),
        (np.zeros((2, 2, 2)), errors.InputTypeError, None, None),
        ("not data", errors.InputTypeError, None, None),
    ],
)
def test_bad_input_named(data, error, column, row):
    with pytest.raises(error) as info:
        validate_frame(data)
    assert isinstance(info.value, ValueError)
    assert info.value.column == column
    assert info.value.row == row


def test_unsorted_datetime_names_the_row():
    idx = pd.to_datetime(["2024-01-01 00:00", "2024-01-01 00:02", "2024-01-01 00:01"])
    with pytest.raises(errors.UnsortedIndexError, match="00:01:00 comes after 2024-01-01 00:02:00"):
        validate_frame(pd.DataFrame({"a": [1, 2, 3]}, index=idx))


def test_string_index_need_not_be_sorted():
    frame = validate_frame(pd.DataFrame({"a": [1, 2]}, index=["hostB", "hostA"]))
    assert list(frame.index) == ["hostB", "hostA"]


def test_too_few_rows():
    with pytest.raises(errors.TooFewRowsError, match="at least 10"):
        validate_frame(np.zeros((3, 2)), min_rows=10)


def test_align_columns_by_name_and_position():
    frame = validate_frame(pd.DataFrame({"b": [1.0], "a": [2.0]}))
    aligned = align_columns(frame, ["a", "b"], named_at_fit=True)
    assert list(aligned.columns) == ["a", "b"] and aligned.values.tolist() == [[2.0, 1.0]]
    with pytest.raises(errors.ColumnMismatchError) as info:
        align_columns(frame, ["a", "c"], named_at_fit=True)
    assert info.value.missing == ["c"] and info.value.extra == ["b"]
    arr = validate_frame(np.array([[1.0, 2.0]]))
    assert list(align_columns(arr, ["a", "b"], named_at_fit=True).columns) == ["a", "b"]
    with pytest.raises(errors.ColumnMismatchError):
        align_columns(arr, ["a", "b", "c"], named_at_fit=True)


def test_robust_scaler_ignores_outliers_and_constant_columns():
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(10, 2, 5000), np.full(5000, 7.0), rng.normal(0, 1, 5000)])
    x[:50, 0] = 1e6  # 1 % wild outliers
    x[100, 2] = np.nan
    scaler = RobustScaler().fit(x)
    assert scaler.center_[0] == pytest.approx(10, abs=0.2)
    assert scaler.scale_[0] == pytest.approx(2, rel=0.1) or scaler.scale_[0] > 2  # std floor may lift it
    assert scaler.scale_[1] == 7.0
    z = scaler.transform(x)
    assert np.all(z[:, 1] == 0) and np.isnan(z[100, 2])
    np.testing.assert_allclose(scaler.inverse_transform(z)[:, 2], x[:, 2])
    back = RobustScaler.from_dict(scaler.to_dict())
    np.testing.assert_array_equal(back.transform(x), z)


def test_robust_scaler_floor_on_collapsed_spread():
    x = np.zeros(1000)
    x[::20] = 1.0  # 5 % bursts: the inter-quartile range is 0
    scaler = RobustScaler().fit(x[:, None])
    assert scaler.scale_[0] == pytest.approx(0.1 * x.std())
    assert np.isfinite(scaler.transform(x[:, None])).all()


def test_robust_scaler_clip():
    scaler = RobustScaler(clip=3.0).fit(np.arange(100.0)[:, None])
    assert scaler.transform(np.array([[1e9]]))[0, 0] == 3.0
    with pytest.raises(errors.ParameterError):
        RobustScaler(quantile_range=(80, 20))


def test_fill_missing_carries_forward():
    x = np.array([[np.nan, 1.0], [2.0, np.nan], [np.nan, np.nan], [4.0, 5.0]])
    out = fill_missing(x, fill_value=np.array([-1.0, -2.0]))
    np.testing.assert_array_equal(out, [[-1, 1], [2, 1], [2, 1], [4, 5]])


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), window=st.integers(1, 50), stride=st.integers(1, 60))
def test_windows_cover_every_row_exactly_once_per_reduction(n, window, stride):
    if stride > window:
        with pytest.raises(errors.ParameterError):
            window_starts(n, window, stride)
        return
    if n < window:
        with pytest.raises(errors.TooFewRowsError):
            window_starts(n, window, stride)
        return
    starts = window_starts(n, window, stride)
    assert starts[0] == 0 and starts[-1] == n - window
    values = np.arange(n, dtype=float)[:, None] * np.array([1.0, -1.0])
    wins = sliding_windows(values, window, starts)
    assert wins.shape == (len(starts), window, 2)
    for how in ("center", "mean", "max"):
        back = windows_to_rows(wins, starts, n, how=how)
        np.testing.assert_allclose(back, values)  # identical copies reduce to the row itself
    spread = spread_to_rows(np.arange(len(starts), dtype=float), starts, window, n)
    assert spread.shape == (n,)


def test_center_takes_the_middle_of_windows():
    starts = window_starts(20, 10, 5)  # windows at 0, 5, 10
    per_window = np.broadcast_to(np.arange(3.0)[:, None], (3, 10))
    rows = windows_to_rows(per_window, starts, 20, how="center")
    # centres 4.5, 9.5, 14.5; rows 7 and 12 are equally far from two centres and take the earlier
    np.testing.assert_array_equal(rows, [0] * 8 + [1] * 5 + [2] * 7)


def test_spread_to_rows_is_the_mean_of_covering_windows():
    starts = np.array([0, 1, 2])
    out = spread_to_rows(np.array([3.0, 6.0, 9.0]), starts, 2, 4)
    np.testing.assert_allclose(out, [3.0, 4.5, 7.5, 9.0])


def test_missing_index_labels_of_any_type_are_refused():
    for index in (pd.Index([0.0, np.nan, 2.0]), pd.Index([np.nan])):
        frame = pd.DataFrame({"a": np.arange(len(index), dtype=float)}, index=index)
        with pytest.raises(errors.UnsortedIndexError, match="no index label"):
            validate_frame(frame)
