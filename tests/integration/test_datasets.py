"""A user's own market data by id, never by path: upload, resolve for the owner only, refuse
traversal and other users' ids, over the library and over REST."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from agents.quant.backtests import load_ohlcv
from agents.quant.datasets import (
    DatasetNotFoundError,
    dataset_path,
    list_datasets,
    register_dataset,
)
from agents.settings import Settings

ALICE = {"x-api-key": "key-alice"}
BOB = {"x-api-key": "key-bob"}


@pytest.fixture(scope="module")
def goog_csv() -> str:
    return str(load_ohlcv("GOOG").iloc[:400].to_csv())


def test_an_upload_resolves_for_its_owner_only(goog_csv: str) -> None:
    info = register_dataset("alice", goog_csv, name="goog-2004")
    assert info.id.startswith("ds-") and info.bars == 400
    assert dataset_path("alice", info.id).read_text() == goog_csv
    assert [d.id for d in list_datasets("alice")] == [info.id]
    assert register_dataset("alice", goog_csv, name="again").id == info.id  # by content
    with pytest.raises(DatasetNotFoundError):
        dataset_path("bob", info.id)
    assert list_datasets("bob") == []


@pytest.mark.parametrize(
    "dataset_id",
    ["../../etc/passwd", "/etc/passwd", "ds-../../../etc", "ds-0123456789ABCDEF", "ds-0123", ""],
)
def test_anything_but_a_dataset_id_is_refused_naming_the_shape(dataset_id: str) -> None:
    with pytest.raises(ValueError, match="is not a dataset id: ids look like ds-"):
        dataset_path("alice", dataset_id)


def test_a_bad_or_oversized_csv_is_refused_and_nothing_is_kept(
    make_settings: Callable[..., Settings], goog_csv: str
) -> None:
    with pytest.raises(ValueError, match="could not be parsed"):
        register_dataset("alice", Path("/etc/passwd").read_text())
    small = make_settings(QUANT_GENAI_MAX_DATASET_BYTES=2048)
    with pytest.raises(ValueError, match="at most 2048 are allowed"):
        register_dataset("alice", goog_csv, settings=small)
    with pytest.raises(ValueError, match="dataset name"):
        register_dataset("alice", goog_csv, name="../x")
    assert list_datasets("alice") == []


def test_the_strategy_graph_takes_no_path() -> None:
    from graphs.strategy_builder import InputState, graph

    names = {f.name for f in dataclasses.fields(InputState)}
    assert "csv_path" not in names and "dataset_id" in names
    schema = json.dumps(graph.get_input_jsonschema())
    assert "csv_path" not in schema and "dataset_id" in schema


def test_a_strategy_on_an_uploaded_dataset_and_not_on_another_users(goog_csv: str) -> None:
    from graphs.strategy_builder import build_strategy

    info = register_dataset("alice", goog_csv, name="goog")
    request = "Buy when the 10-day SMA crosses above the 30-day SMA."
    out = build_strategy(request, user_id="alice", dataset_id=info.id, use_rag=False)
    assert out.ok and out.metrics is not None, out.error
    first, last = str(out.metrics.start), str(out.metrics.end)
    assert first.startswith("2004-08") and last.startswith("2006-03")  # 400 bars, not all GOOG
    with pytest.raises(DatasetNotFoundError):
        build_strategy(request, user_id="bob", dataset_id=info.id, use_rag=False)


def test_datasets_over_rest(serve_app: Callable[..., str], goog_csv: str) -> None:
    url = serve_app(
        QUANT_GENAI_API_KEYS=json.dumps({"key-alice": "alice", "key-bob": "bob"}),
        QUANT_GENAI_RATE_PER_MIN="0",
        QUANT_GENAI_MAX_DATASET_BYTES="200000",
    )
    with httpx.Client(base_url=url, timeout=120) as http:
        r = http.post("/v1/datasets", json={"name": "goog", "csv": goog_csv}, headers=ALICE)
        assert r.status_code == 201, r.text
        ds = r.json()["id"]
        assert [d["id"] for d in http.get("/v1/datasets", headers=ALICE).json()["datasets"]] == [ds]
        assert http.get("/v1/datasets", headers=BOB).json()["datasets"] == []
        bad = http.post("/v1/datasets", json={"csv": "root:x:0:0::/root:/bin/sh"}, headers=ALICE)
        assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_dataset"
        big = http.post("/v1/datasets", json={"csv": "1" * 250_000}, headers=ALICE)
        assert big.status_code == 413 and big.json()["error"]["type"] == "body_too_large"
        body = {"request": "SMA 10/30 crossover", "dataset_id": "../../etc/passwd"}
        r = http.post("/v1/strategies", json=body, headers=ALICE)
        assert r.status_code == 422 and "dataset_id" in r.json()["error"]["message"]
        r = http.post("/v1/strategies", json={**body, "dataset_id": ds}, headers=BOB)
        assert r.status_code == 404 and r.json()["error"]["type"] == "dataset_not_found"
        r = http.post("/v1/strategies", json={**body, "csv_path": "/etc/passwd"}, headers=ALICE)
        assert r.status_code == 422 and "csv_path" in r.json()["error"]["message"]
