"""Tool calls written as JSON in a model's text, turned into LangChain `ToolCall`s.

The embedded Qwen2.5-Coder-0.5B does not emit structured `tool_calls` (DESIGN.md: asked to call
a tool it writes JSON in its text; `tool_choice="required"` made it loop for 167 s). Graphs with
a `tool_calling = "json_text"` model describe the tools in the prompt and parse the reply here.

Accepted shapes, alone, in a list, inside ```json fences or Qwen's `<tool_call>` tags, with
prose around them:
  {"name": N, "arguments": {...}}          (also "args", "parameters", "input"; a JSON string)
  {"tool": N, "args": {...}}               (also "tool_name", "function": "<name>", "action")
  {"function": {"name": N, "arguments": "<json string>"}}  (OpenAI's wire shape)
  {"tool_calls": [...]}                    (any of the above inside)
  {N: {...}}                               (a single key that is a tool name)
Small models also write Python-style dicts (single quotes, True/None): parsed with
`ast.literal_eval`, which evaluates literals only. Unknown tool names are ignored; nothing here
raises on malformed input — a reply that cannot be parsed is simply an answer.
"""

from __future__ import annotations

import ast
import json
import re
import uuid
from collections.abc import Collection, Iterator
from typing import Any

from langchain_core.messages import AIMessage, ToolCall
from langchain_core.messages.tool import tool_call

MAX_TEXT_CHARS = 50_000
"""Longer replies are not scanned past this (a tool call comes first, not after an essay)."""

_TAG = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_FENCE = re.compile(
    r"```[ \t]*(?:json|JSON|tool_call|tool|javascript|js|python)?[ \t]*\n?(.*?)```", re.DOTALL
)
_NAME_KEYS = ("name", "tool", "tool_name", "function", "action", "function_name")
_ARGS_KEYS = ("arguments", "args", "parameters", "params", "input", "action_input", "kwargs")
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


def _balanced_end(text: str, start: int) -> int | None:
    """Index just past the bracket matching `text[start]`, skipping quoted strings."""
    opener = text[start]
    closer = "}" if opener == "{" else "]"
    depth = 0
    quote: str | None = None
    i = start
    n = len(text)
    while i < n:
        c = text[i]
        if quote is not None:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
            if depth == 0:
                return i + 1 if c == closer else None
        i += 1
    return None


def _loads(fragment: str) -> Any:
    """JSON, then JSON without trailing commas, then a Python literal; None if all fail."""
    for candidate in (fragment, _TRAILING_COMMA.sub(r"\1", fragment)):
        try:
            return json.loads(candidate)
        except (ValueError, RecursionError):
            pass
    try:
        return ast.literal_eval(fragment)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def _json_spans(text: str, offset: int = 0) -> Iterator[tuple[int, int, Any]]:
    """Top-level JSON objects/arrays in `text`: (start, end, value), positions + `offset`."""
    i = 0
    while i < len(text):
        if text[i] in "{[":
            end = _balanced_end(text, i)
            if end is not None:
                value = _loads(text[i:end])
                if isinstance(value, dict | list):
                    yield offset + i, offset + end, value
                    i = end
                    continue
        i += 1


def _args(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return {}
    if isinstance(raw, str):
        raw = _loads(raw) if raw.strip() else {}
    return raw if isinstance(raw, dict) else None


def _calls(value: Any, names: Collection[str], depth: int = 0) -> list[tuple[str, dict[str, Any]]]:
    """(name, args) pairs from one decoded JSON value; unknown names dropped."""
    if depth > 4:
        return []
    if isinstance(value, list):
        return [c for v in value for c in _calls(v, names, depth + 1)]
    if not isinstance(value, dict):
        return []
    if isinstance(value.get("tool_calls"), list):
        return _calls(value["tool_calls"], names, depth + 1)
    fn = value.get("function")
    if isinstance(fn, dict):  # OpenAI wire shape
        return _calls(fn, names, depth + 1)
    name = next((value[k] for k in _NAME_KEYS if isinstance(value.get(k), str)), None)
    if name is not None:
        name = name.strip()
        raw = next((value[k] for k in _ARGS_KEYS if k in value), None)
        args = _args(raw)
        return [(name, args)] if name in names and args is not None else []
    if len(value) == 1:  # {"tool_name": {...args}}
        ((key, raw),) = value.items()
        args = _args(raw)
        if isinstance(key, str) and key in names and args is not None:
            return [(key, args)]
    return []


def _extract(text: str, names: Collection[str]) -> tuple[list[ToolCall], list[tuple[int, int]]]:
    """The tool calls in `text` and the spans of text they were written in."""
    text = text[:MAX_TEXT_CHARS]
    found: list[tuple[int, int, list[tuple[str, dict[str, Any]]]]] = []
    for pattern in (_TAG, _FENCE):
        for m in pattern.finditer(text):
            calls = [c for _, _, v in _json_spans(m.group(1)) for c in _calls(v, names)]
            if calls:
                found.append((m.start(), m.end(), calls))
        if found:
            break
    if not found:
        for start, end, value in _json_spans(text):
            calls = _calls(value, names)
            if calls:
                found.append((start, end, calls))
    found.sort(key=lambda f: f[0])
    tool_calls = [
        tool_call(name=name, args=args, id=f"call_{uuid.uuid4().hex[:24]}")
        for _, _, calls in found
        for name, args in calls
    ]
    return tool_calls, [(s, e) for s, e, _ in found]


def parse_text_tool_calls(text: str, tool_names: Collection[str]) -> list[ToolCall]:
    """The known tool calls a model wrote as JSON in `text` (empty list if none; never raises)."""
    if not isinstance(text, str) or not text:
        return []
    return _extract(text, set(tool_names))[0]


def message_text(content: Any) -> str:
    """A message's text, whether a string or a list of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            b if isinstance(b, str) else str(b.get("text", "")) if isinstance(b, dict) else ""
            for b in content
        )
    return str(content or "")


def with_text_tool_calls(message: AIMessage, tool_names: Collection[str]) -> AIMessage:
    """`message` with the JSON-in-text calls moved into `tool_calls` and out of the content.

    A message that already has structured tool calls, or whose text holds none, comes back
    unchanged. Ids, metadata and usage are kept so cost accounting and memory line up.
    """
    if message.tool_calls:
        return message
    text = message_text(message.content)
    calls, spans = _extract(text, set(tool_names))
    if not calls:
        return message
    remaining, pos = [], 0
    for start, end in spans:
        remaining.append(text[pos:start])
        pos = end
    remaining.append(text[pos:])
    return message.model_copy(
        update={
            "content": "".join(remaining).strip(),
            "tool_calls": calls,
            "invalid_tool_calls": [],
        }
    )


_ANSWER_KEYS = ("answer", "result", "response", "content", "message", "text", "output", "reply")


def unwrap_json_answer(message: AIMessage) -> AIMessage:
    """A final answer the small model wrote as JSON, as plain text.

    Only a reply that is *entirely* JSON (optionally fenced) is touched: a single string under an
    answer-like key (`{"result": "..."}`) is unwrapped; any other object or list (an echoed tool
    result) becomes readable `key: value` lines. Anything else is left exactly as written.
    """
    if message.tool_calls:
        return message
    text = message_text(message.content).strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, re.DOTALL)
    body = fenced.group(1) if fenced else text
    if (body[:1], body[-1:]) not in (("{", "}"), ("[", "]")):
        return message
    value = _loads(body)
    if isinstance(value, dict) and len(value) == 1:
        ((key, inner),) = value.items()
        if str(key).lower() in _ANSWER_KEYS and isinstance(inner, str) and inner.strip():
            return message.model_copy(update={"content": inner.strip()})
    if isinstance(value, dict | list) and value:
        # The small model echoed a tool result as its answer: show it as readable lines.
        return message.model_copy(update={"content": _readable(value)})
    return message


def _readable(value: Any, indent: str = "") -> str:
    """JSON data as short `key: value` lines (lists as bullets) for a person to read."""
    if isinstance(value, dict):
        lines = []
        for k, v in value.items():
            if isinstance(v, dict | list) and v:
                lines.append(f"{indent}{k}:\n{_readable(v, indent + '  ')}")
            else:
                lines.append(f"{indent}{k}: {v}")
        return "\n".join(lines)
    if isinstance(value, list):
        return "\n".join(f"{indent}- " + _readable(v, indent + "  ").lstrip() for v in value)
    return f"{indent}{value}"
