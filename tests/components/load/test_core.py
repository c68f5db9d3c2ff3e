"""Unit tests of components/load/core.py: sources, validation messages, dropping columns."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest

from components.load import core
from pipeline import config


def _write(tmp_path: Path, frame: pd.DataFrame) -> str:
    path = tmp_path / "input.csv"
    frame.to_csv(path, index=False)
    return str(path)


def test_bundled_table_matches_its_recorded_sha256():
    data = core.bundled_csv_bytes()
    recorded = resources.files("components").joinpath("data/boston_housing.csv.sha256").read_text().split()[0]
    assert hashlib.sha256(data).hexdigest() == recorded


def test_bundled_table_has_506_rows_and_the_standard_columns():
    table = core.load_table()
    assert table.frame.shape == (506, 14)
    assert list(table.frame.columns) == [*config.FEATURES, config.TARGET]
    assert table.metadata["rows"] == 506
    assert table.frame["MEDV"].between(5, 50).all()


def test_local_path_source_round_trips(tmp_path, boston):
    table = core.load_table(_write(tmp_path, boston))
    pd.testing.assert_frame_equal(table.frame, boston)


def test_drop_columns_removes_a_feature(boston):
    table = core.load_table(drop_columns="B")
    assert "B" not in table.frame.columns
    assert table.frame.shape == (506, 13)
    assert core.feature_columns(table.frame) == [c for c in config.FEATURES if c != "B"]


def test_dropping_the_target_or_an_unknown_column_is_refused():
    with pytest.raises(core.BadInput, match="MEDV"):
        core.load_table(drop_columns="MEDV")
    with pytest.raises(core.BadInput, match="NOPE"):
        core.load_table(drop_columns="NOPE")


def _set(frame: pd.DataFrame, column: str, row: int, value: object) -> pd.DataFrame:
    frame = frame.astype({column: object})
    frame.loc[row, column] = value
    return frame


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.drop(columns=["RM"]), r"missing column\(s\) RM"),
        (lambda f: f.assign(EXTRA=1.0), r"unexpected column\(s\) EXTRA"),
        (lambda f: _set(f, "TAX", 6, "abc"), r"column TAX, row 7: 'abc' is not a number"),
        (lambda f: _set(f, "AGE", 2, None), r"column AGE, row 3: missing value"),
        (lambda f: _set(f, "MEDV", 4, -3.0), r"column MEDV, row 5: -3 is outside"),
        (lambda f: f.head(5), r"only 5 data rows"),
    ],
    ids=["missing-column", "extra-column", "text-value", "missing-value", "target-range", "too-few-rows"],
)
def test_bad_files_fail_with_one_line_naming_the_problem(tmp_path, boston, mutate, message):
    path = _write(tmp_path, mutate(boston.copy()))
    with pytest.raises(core.BadInput, match=message) as info:
        core.load_table(path)
    assert "\n" not in str(info.value)


def test_empty_garbage_and_missing_files_fail_clearly(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(core.BadInput, match="empty"):
        core.load_table(str(empty))
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(b"\x00\xff\xfe binary junk \x00\n\x01,\x02\n")
    with pytest.raises(core.BadInput, match=r"^input is not a readable CSV file: 'utf-8' codec can't decode byte 0xff"):
        core.load_table(str(garbage))
    with pytest.raises(core.BadInput, match="not found"):
        core.load_table(str(tmp_path / "nope.csv"))


def test_infinite_value_is_refused(tmp_path, boston):
    frame = boston.copy()
    frame.loc[3, "CRIM"] = float("inf")
    with pytest.raises(core.BadInput, match="column CRIM, row 4: value is not finite"):
        core.load_table(_write(tmp_path, frame))


def test_s3_source_uses_the_reader_and_needs_one():
    seen = []

    def reader(uri: str) -> bytes:
        seen.append(uri)
        return core.bundled_csv_bytes()

    assert core.load_table("s3://data/boston.csv", s3_reader=reader).frame.shape == (506, 14)
    assert seen == ["s3://data/boston.csv"]
    with pytest.raises(core.BadInput, match="no S3 store"):
        core.load_table("s3://data/boston.csv")


@pytest.mark.server
def test_http_source_reads_over_real_http(tmp_path, boston):
    import functools
    import http.server
    import threading

    (tmp_path / "boston.csv").write_bytes(core.bundled_csv_bytes())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        table = core.load_table(f"http://127.0.0.1:{server.server_address[1]}/boston.csv")
    finally:
        server.shutdown()
        thread.join(timeout=5)
    pd.testing.assert_frame_equal(table.frame, boston)
