"""House rules of docs/architecture.md a reader cannot see at a glance: sizes, layers, names."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from agents import registry

ROOT = Path(__file__).resolve().parents[2]
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 80


def _runtime_files() -> list[Path]:
    return sorted(p for p in (ROOT / "agents").rglob("*.py") if "__pycache__" not in p.parts)


def _long_functions(path: Path, root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text("utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = (node.end_lineno or node.lineno) - first + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_runtime_files_are_small() -> None:
    files = _runtime_files()
    assert len(files) > 20  # the walk really found the packages
    big = [
        f"{p.relative_to(ROOT)} ({n} lines)"
        for p in files
        if (n := len(p.read_text("utf-8").splitlines())) > MAX_FILE_LINES
    ]
    assert big == [], f"files over {MAX_FILE_LINES} lines: {big}"


def test_runtime_functions_are_short() -> None:
    long = [f for p in _runtime_files() for f in _long_functions(p)]
    assert long == [], f"functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_the_size_check_can_fail(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "long.py").write_text(f"@staticmethod\ndef f():\n{body}\n", "utf-8")
    (tmp_path / "short.py").write_text("def g():\n    return 1\n", "utf-8")
    assert _long_functions(tmp_path / "long.py", tmp_path) == ["long.py:2 f (82 lines)"]
    assert _long_functions(tmp_path / "short.py", tmp_path) == []


@pytest.mark.parametrize(
    "service", ["strategy_builder", "narrative_report", "chatops_advanced", "prompt_governance"]
)
def test_each_graph_module_is_its_service(service: str) -> None:
    """graphs/<service>.py: a SERVICE constant, a graph compiled under the service id, its
    prompt overhead, and the entry langgraph.json serves."""
    import importlib

    module = importlib.import_module(f"graphs.{service}")
    assert service == module.SERVICE
    assert module.graph.name == service
    assert module.PROMPT_OVERHEAD_TOKENS > 0
    served = json.loads((ROOT / "langgraph.json").read_text("utf-8"))["graphs"]
    assert served[service] == f"./graphs/{service}.py:graph"


def test_one_registry_resets_every_cache() -> None:
    from agents.llm.factory import create_chat_model  # registers its caches
    from agents.settings import Settings, get_settings

    names = registry.caches()
    for expected in ("settings", "chat models", "ledgers", "retrievers", "embedding models"):
        assert expected in names
    first = get_settings()
    assert get_settings() is first
    registry.reset()
    assert get_settings() is not first
    s = Settings(_env_file=None, QUANT_GENAI_BACKEND="openai", OPENAI_API_KEY="sk-x")  # type: ignore[call-arg]
    model = create_chat_model("narrative_report", settings=s)
    same = Settings(_env_file=None, QUANT_GENAI_BACKEND="openai", OPENAI_API_KEY="sk-x")  # type: ignore[call-arg]
    assert create_chat_model("narrative_report", settings=same) is model  # keyed by values
    other = Settings(_env_file=None, QUANT_GENAI_BACKEND="openai", OPENAI_API_KEY="sk-y")  # type: ignore[call-arg]
    assert create_chat_model("narrative_report", settings=other) is not model  # secrets count
    registry.reset()
    assert create_chat_model("narrative_report", settings=s) is not model
