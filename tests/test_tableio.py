"""Tables on disk for the command line and the fleet: CSV or Parquet, a time column as the index."""

from __future__ import annotations

import pandas as pd
import pytest

from tsdiff import errors
from tsdiff.tableio import read_table, set_time_index, write_table


def test_a_first_column_named_time_becomes_the_index(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("timestamp,a,b\n2024-01-01 00:00,1,2\n2024-01-01 00:01,3,4\n")
    frame = read_table(path)
    assert isinstance(frame.index, pd.DatetimeIndex) and list(frame.columns) == ["a", "b"]
    write_table(frame, tmp_path / "out.csv")
    pd.testing.assert_frame_equal(read_table(tmp_path / "out.csv"), frame, check_freq=False)


def test_without_a_time_column_rows_keep_a_plain_index(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("a,b\n1,2\n3,4\n")
    assert isinstance(read_table(path).index, pd.RangeIndex)


@pytest.mark.filterwarnings("ignore:Could not infer format")
def test_bad_files_and_time_columns_are_named(tmp_path):
    with pytest.raises(errors.InputError, match="no such file"):
        read_table(tmp_path / "missing.csv")
    frame = pd.DataFrame({"when": ["soon", "later"], "a": [1, 2]})
    with pytest.raises(errors.InputError, match=r"x\.csv: time column 'when' does not hold timestamps"):
        set_time_index(frame, "when", "x.csv")
    with pytest.raises(errors.InputError, match="no time column 'time'"):
        set_time_index(frame, "time", "x.csv")
