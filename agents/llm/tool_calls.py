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
raises on malformed input.

A reply with no call is not therefore an answer: `reply_problem` says why a text is not one a
person should read (a tool call echoed as text, JSON data, a `key: value` dump), and
`unsupported_numbers` which of its numbers no tool result or user message contains. Graphs send
such replies back to the model or answer from the tool result in code; they never show them.
`argument_errors` turns a tool schema's validation errors into sentences naming the argument.
"""

from __future__ import annotations

import ast
import json
import re
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
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
    """A final answer the small model wrapped in JSON (`{"result": "..."}`), as its plain text.

    Only a reply that is *entirely* one JSON object (optionally fenced) with a single answer-like
    key holding a non-empty string is unwrapped. Anything else comes back unchanged: an echoed
    tool call or a JSON dump is not made to look like an answer (`reply_problem` rejects it).
    """
    if message.tool_calls:
        return message
    text = message_text(message.content).strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, re.DOTALL)
    body = fenced.group(1) if fenced else text
    if (body[:1], body[-1:]) != ("{", "}"):
        return message
    value = _loads(body)
    if isinstance(value, dict) and len(value) == 1:
        ((key, inner),) = value.items()
        if str(key).lower() in _ANSWER_KEYS and isinstance(inner, str) and inner.strip():
            return message.model_copy(update={"content": inner.strip()})
    return message


# --------------------------------------------------------------------------------------------
# Is a reply an answer? (the no-raw-JSON guard)
# --------------------------------------------------------------------------------------------

_CALL_TEXT = re.compile(
    r"""["'](?:arguments|tool_calls|function_call)["']\s*:|<tool_call>|"""
    r"""^\s*(?:arguments|tool_calls|function_call)\s*:|"""
    r"""["'](?:name|tool|tool_name)["']\s*:\s*["'][A-Za-z_][\w.-]*["']\s*,\s*"""
    r"""["'](?:arguments|args|parameters|params|input)["']""",
    re.MULTILINE,
)
_JSONISH_LINE = re.compile(r"""^\s*(?:[{}\[\]]|"[^"]*"\s*:|```)""")
_KV_LINE = re.compile(r"^\s*(?:[-*]\s+)?([A-Za-z_][\w]*(?:[ /][\w%()]+){0,2})\s*:(.*)$")
_SENTENCE_END = re.compile(r"[.!?]\s*$")


def _call_shaped(value: Any, depth: int = 0) -> list[str]:
    """Names of objects in a decoded JSON value that look like tool calls, known or not."""
    if depth > 4:
        return []
    if isinstance(value, list):
        return [n for v in value for n in _call_shaped(v, depth + 1)]
    if not isinstance(value, dict):
        return []
    if isinstance(value.get("tool_calls"), list):
        return _call_shaped(value["tool_calls"], depth + 1)
    if isinstance(value.get("function"), dict):
        return _call_shaped(value["function"], depth + 1)
    name = next((value[k] for k in _NAME_KEYS if isinstance(value.get(k), str)), None)
    if name is not None and any(k in value for k in _ARGS_KEYS):
        return [name.strip()]
    return []


def _json_share(text: str) -> float:
    """The share of `text`'s non-blank characters inside top-level JSON objects or lists."""
    total = len("".join(text.split()))
    if not total:
        return 0.0
    inside = sum(len("".join(text[s:e].split())) for s, e, _ in _json_spans(text[:MAX_TEXT_CHARS]))
    return inside / total


def _is_dump_line(line: str) -> bool:
    m = _KV_LINE.match(line)
    if m is None:
        return False
    value = m.group(2).strip()
    return not value or (len(value.split()) <= 6 and not _SENTENCE_END.search(value))


def reply_problem(text: str, tool_names: Collection[str] = ()) -> str | None:
    """Why `text` is not an answer to show a person, or None when it is one.

    Not answers: empty text; a tool call written as text (any tool name, known or not — a call
    that could be parsed would have been run); a reply that is mostly JSON (also JSON cut off by
    the token limit); a `key: value` dump (two or more lines, most of them `key: short value`,
    also YAML-style echoes of a call). Prose may quote a small JSON snippet.
    """
    s = text.strip()
    if not s:
        return "the reply is empty"
    spans = list(_json_spans(s[:MAX_TEXT_CHARS]))
    names = [n for _, _, v in spans for n in _call_shaped(v)]
    if names or _CALL_TEXT.search(s):
        unknown = sorted({n for n in names if n not in tool_names})
        if unknown:
            return f"it is a tool call written as text, of unknown tools: {', '.join(unknown)}"
        return "it is a tool call written as text, not an answer"
    lines = [ln for ln in s.splitlines() if ln.strip()]
    jsonish = sum(1 for ln in lines if _JSONISH_LINE.match(ln))
    if s[:1] in "{[" or _json_share(s) >= 0.5 or jsonish * 2 >= len(lines):
        return "it is JSON data, not an answer in sentences"
    dump = sum(1 for ln in lines if _is_dump_line(ln))
    if dump >= 2 and dump * 5 >= len(lines) * 3:
        return "it is a list of `key: value` lines, not an answer in sentences"
    return None


# --------------------------------------------------------------------------------------------
# Numbers in an answer must come from tool results or the user
# --------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"(?<![\w.])[-+−]?\$?\d[\d,]*(?:\.\d+)?")
_LIST_MARKER = re.compile(r"^\s*\d{1,2}[.)]\s", re.MULTILINE)
_DASHES = str.maketrans({"-": " ", "–": " ", "—": " ", "−": " "})
MAX_RELATIVE_ERROR = Decimal("0.2")
"""A rounding stays within this share of the value too: 0.8 for 0.79, not 1 for 0.79."""


def _decimal(token: str) -> Decimal | None:
    t = token.replace("$", "").replace(",", "").rstrip(".").lstrip("+")
    try:
        return abs(Decimal(t))
    except (InvalidOperation, ValueError):
        return None


def numbers_in(text: str) -> set[Decimal]:
    """Every number written in `text`, sign-free (dates split into their parts)."""
    found = (_decimal(t) for t in _NUMBER.findall(text.translate(_DASHES)))
    return {d for d in found if d is not None}


def unsupported_numbers(answer: str, sources: Iterable[str]) -> list[str]:
    """Numbers in `answer` that are not (a rounding of) a number in one of `sources`.

    "55%" is supported by 55.23, "55.3" is not (nor "1" by 0.79); signs are ignored (a drawdown
    of -30.5% may be written 30.5%); "1." list markers at the start of a line are not numbers.
    Sources are tool results and the user's messages: what code computed and what the user said.
    """
    allowed: set[Decimal] = set()
    for source in sources:
        allowed |= numbers_in(source)
    bad: list[str] = []
    text = _LIST_MARKER.sub(" ", answer).translate(_DASHES)
    for token in _NUMBER.findall(text):
        d = _decimal(token)
        if d is None:
            continue
        exp = d.as_tuple().exponent
        half_ulp = Decimal(5) * Decimal(10) ** ((exp if isinstance(exp, int) else 0) - 1)
        if not any(abs(a - d) <= min(half_ulp, a * MAX_RELATIVE_ERROR) for a in allowed):
            bad.append(token.rstrip(".,"))
    return list(dict.fromkeys(bad))


# --------------------------------------------------------------------------------------------
# Invalid arguments, in words the model can act on
# --------------------------------------------------------------------------------------------


def argument_errors(errors: Sequence[Mapping[str, Any]]) -> list[str]:
    """Pydantic validation errors of a tool's arguments as short sentences naming each one."""
    out: list[str] = []
    for e in errors:
        loc = ".".join(str(p) for p in e.get("loc", ()) if p != "__root__") or "arguments"
        kind = str(e.get("type", ""))
        if kind == "missing":
            out.append(f"missing required argument `{loc}`")
        elif kind == "extra_forbidden":
            out.append(f"unknown argument `{loc}`")
        else:
            got = e.get("input")
            shown = f" (got {json.dumps(got, default=str)[:60]})" if "input" in e else ""
            out.append(f"invalid argument `{loc}`: {e.get('msg', 'invalid value')}{shown}")
    return list(dict.fromkeys(out))


def invalid_call_message(tool_name: str, problems: Sequence[str], signature: str = "") -> str:
    """The tool result an invalid call gets: what is wrong, the tool's arguments, what to do."""
    text = f"Error: the call of {tool_name} was not run: {'; '.join(problems) or 'invalid'}."
    if signature:
        text += f" Its arguments: {signature}."
    return text + " Call it again with valid arguments, or answer without it."
