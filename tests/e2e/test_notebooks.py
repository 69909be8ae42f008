"""The notebooks run top to bottom on the embedded defaults (executed, not just parsed)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.e2e
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.fixture
def notebook_env(monkeypatch: pytest.MonkeyPatch, local_gguf: Path, local_port: int) -> None:
    """The kernel inherits the test's environment: its own data dir, the session's model."""
    monkeypatch.setenv("QUANT_GENAI_LOCAL_MODEL_PATH", str(local_gguf))
    monkeypatch.setenv("QUANT_GENAI_LOCAL_PORT", str(local_port))
    monkeypatch.setenv("QUANT_GENAI_BACKEND", "local")


@pytest.mark.usefixtures("notebook_env")
@pytest.mark.parametrize(
    "name", ["quickstart.ipynb", "rag_over_backtests.ipynb", "cost_dashboard.ipynb"]
)
def test_notebook_executes(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(
        nb,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS.parent)}},
    ).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert outputs  # every notebook shows something: tables, prints or plots
    if name == "cost_dashboard.ipynb":
        assert any("image/png" in o.get("data", {}) for o in outputs)
