"""A user's own market data: OHLCV CSVs uploaded by the user, kept under their data dir, named
by id. No request names a server path: a graph or a route takes a dataset id (`ds-` and 16 hex
digits), which resolves only inside `<data dir>/datasets/<user hash>/`, and only for its owner.

`register_dataset(user_id, data)` validates the CSV exactly as a backtest will read it
(`load_ohlcv_csv`: columns, dates, prices, at least `MIN_ROWS` bars), refuses more than
`max_dataset_bytes`, and stores it under an id derived from its content (the same upload twice
is one dataset). `dataset_path(user_id, dataset_id)` is the only way back to a file.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agents.quant.backtests import InvalidMarketDataError, load_ohlcv_csv
from agents.settings import Settings, get_settings

DATASET_ID = re.compile(r"ds-[0-9a-f]{16}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}")


class DatasetNotFoundError(LookupError):
    """No dataset with that id among the user's."""


class DatasetInfo(BaseModel):
    """What a user sees of one of their datasets."""

    id: str
    name: str
    bars: int
    first: str
    last: str
    bytes: int
    created_at: str


def _root(user_id: str, settings: Settings | None) -> Path:
    if not isinstance(user_id, str) or not user_id.strip() or user_id != user_id.strip():
        raise ValueError("user_id must be a non-empty string without surrounding whitespace")
    owner = hashlib.sha256(user_id.encode()).hexdigest()[:32]  # no user text in a path
    return (settings or get_settings()).resolved_data_dir / "datasets" / owner


def valid_dataset_id(dataset_id: object) -> str:
    """The id if it has the dataset shape, else a ValueError naming the shape."""
    if not isinstance(dataset_id, str) or not DATASET_ID.fullmatch(dataset_id):
        raise ValueError(
            f"{str(dataset_id)[:40]!r} is not a dataset id: ids look like ds-0123456789abcdef "
            "(from POST /v1/datasets or register_dataset)"
        )
    return dataset_id


def register_dataset(
    user_id: str, data: bytes | str, *, name: str = "upload", settings: Settings | None = None
) -> DatasetInfo:
    """Validate an OHLCV CSV and keep it as one of the user's datasets (ValueError when it is
    too big, not a valid CSV, or the name is not a plain name)."""
    s = settings or get_settings()
    raw = data.encode() if isinstance(data, str) else bytes(data)
    if len(raw) > s.max_dataset_bytes:
        raise ValueError(f"the CSV is {len(raw)} bytes; at most {s.max_dataset_bytes} are allowed")
    if not _NAME.fullmatch(name):
        raise ValueError("a dataset name is 1-64 letters, digits, spaces, '.', '_' or '-'")
    try:
        frame = load_ohlcv_csv(io.BytesIO(raw), symbol=name.upper())
    except InvalidMarketDataError as exc:
        raise ValueError(str(exc)) from exc
    dataset_id = "ds-" + hashlib.sha256(raw).hexdigest()[:16]
    root = _root(user_id, s)
    root.mkdir(parents=True, exist_ok=True)
    info = DatasetInfo(
        id=dataset_id,
        name=name,
        bars=len(frame),
        first=str(frame.index[0]),
        last=str(frame.index[-1]),
        bytes=len(raw),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    (root / f"{dataset_id}.csv").write_bytes(raw)
    (root / f"{dataset_id}.json").write_text(info.model_dump_json(), "utf-8")
    return info


def dataset_path(user_id: str, dataset_id: str, settings: Settings | None = None) -> Path:
    """The file of one of the user's datasets (DatasetNotFoundError for any other id)."""
    path = _root(user_id, settings) / f"{valid_dataset_id(dataset_id)}.csv"
    if not path.is_file():
        raise DatasetNotFoundError(f"no dataset {dataset_id} among your datasets")
    return path


def list_datasets(user_id: str, settings: Settings | None = None) -> list[DatasetInfo]:
    """The user's datasets, newest first."""
    root = _root(user_id, settings)
    found: list[dict[str, Any]] = []
    for meta in root.glob("ds-*.json") if root.is_dir() else []:
        found.append(json.loads(meta.read_text("utf-8")))
    return [DatasetInfo(**d) for d in sorted(found, key=lambda d: d["created_at"], reverse=True)]


__all__ = [
    "DATASET_ID",
    "DatasetInfo",
    "DatasetNotFoundError",
    "dataset_path",
    "list_datasets",
    "register_dataset",
    "valid_dataset_id",
]
