"""Schemathesis against the REST app's own OpenAPI spec, fetched over HTTP from the real app
under uvicorn: every operation (nothing excluded), with a user's key and without one. No answer
may be a 5xx, and every error must be the API's JSON error naming what was wrong (`error.type`,
a non-empty `error.message`); without a key every operation is 401.

It drives schemathesis' own engine (what `schemathesis run` runs: examples, coverage, fuzzing and
stateful phases) from a test rather than its pytest plugin, whose lazy schemas fail on pytest 9.2
in the schemathesis that installs beside langgraph-api (see pyproject.toml).

Models are served by the fake OpenAI-compatible server (every chat model of the catalog routed
to it), so a fuzzed request that reaches a graph is fast and no embedded model starts; the
embeddings are the packaged MiniLM. Generation is deterministic (fixed seed, derandomized), so a
failure found here is found again on the next run.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi.routing import APIRoute
from schemathesis import BaseSchema, Case, CheckContext, HookContext, Response
from schemathesis.engine import events

from agents.llm.catalog import MODEL_CATALOG
from agents.serve import api
from tests.fakes.openai_server import FakeServer

KEYS = {"key-alice": "alice", "key-root": "root"}
# The fuzzing user is an admin, so that every route's success path is reached too (`/metrics`,
# `/v1/usage?all_users=true`); what a plain user is refused is in test_server_guards.py.
ROOT = {"x-api-key": "key-root"}
MAX_EXAMPLES = 25  # per operation and phase; the coverage phase adds its own boundary cases
SEED = 20240610
TIMEOUT_S = 120

# Every operation of the app's spec: all its routes but `/info` (Studio reads it without a key;
# `include_in_schema=False`, tried by hand below) and FastAPI's own spec and docs pages.
OPERATIONS = {
    f"{method} {route.path}"
    for route in api.app.routes
    if isinstance(route, APIRoute) and route.include_in_schema
    for method in route.methods or ()
}


@pytest.fixture
def api_url(serve_app: Callable[..., str], fake_openai: FakeServer) -> str:
    route = {"base_url": fake_openai.base_url, "billed": True, "stream_usage": True}
    chat_models = [m.id for m in MODEL_CATALOG.values() if m.kind == "chat"]
    return serve_app(
        QUANT_GENAI_API_KEYS=json.dumps(KEYS),
        QUANT_GENAI_ADMIN_USERS='["root"]',
        QUANT_GENAI_METRICS_TOKEN="scrape-me",
        # Local embeddings (MiniLM), and every chat model on the fake server: nothing embedded
        # starts, nothing leaves the machine.
        QUANT_GENAI_BACKEND="local",
        QUANT_GENAI_MODEL_ROUTES=json.dumps({m: route for m in chat_models}),
        QUANT_GENAI_MAX_RETRIES="0",
        QUANT_GENAI_FALLBACK="false",
        QUANT_GENAI_RATE_LIMITS='{"enabled": false}',  # one busy user: 429s would hide routes
    )


def _schema(url: str, headers: dict[str, str] | None) -> BaseSchema:
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "headers": headers or {},
            "request-timeout": TIMEOUT_S,
            "generation": {
                "mode": "all",  # valid and invalid inputs
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            "continue-on-failure": True,  # every failure of an operation, not its first
            # Only these two built-in ones (the others judge the spec, not the server), plus
            # this module's checks, which are registered and so always on.
            "checks": {"enabled": False, "not_a_server_error": {"enabled": True}},
        }
    )
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=config)
    return schema


@pytest.fixture
def authed_schema(api_url: str) -> BaseSchema:
    schema = _schema(api_url, ROOT)

    @schema.hook
    def map_body(context: HookContext, body: Any) -> Any:
        """About half the backtests posted are the caller's own, so that indexing them runs
        too (another user's is a 403 before it); deterministic, as generation is."""
        operation = context.operation
        if operation is not None and operation.path == "/v1/backtests" and isinstance(body, dict):
            owner = body.get("user_id")
            if isinstance(owner, str) and len(owner) % 2 == 0:
                return {**body, "user_id": KEYS[ROOT["x-api-key"]]}
        return body

    return schema


@pytest.fixture
def anonymous_schema(api_url: str) -> BaseSchema:
    return _schema(api_url, None)


def _error(response: Response) -> dict[str, Any]:
    """The API's error object of `response`, or AssertionError saying what is missing."""
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/json"), (
        f"{response.status_code} answered as {content_type!r}, not JSON: {response.text[:200]!r}"
    )
    body = response.json()
    error = body.get("error") if isinstance(body, dict) else None
    assert isinstance(error, dict), f"{response.status_code} without an `error` object: {body!r}"
    assert isinstance(error.get("type"), str) and error["type"], f"no error.type: {body!r}"
    message = error.get("message")
    assert isinstance(message, str) and message.strip(), f"no error.message: {body!r}"
    allowed = error.get("allowed")
    assert allowed is None or isinstance(allowed, list), f"error.allowed not a list: {body!r}"
    return error


@schemathesis.check
def error_names_what_was_wrong(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Every 4xx (and 5xx) is JSON `{"error": {"type", "message", "allowed"?}}`, the message
    non-empty; a 422 names where each problem is (`body.request: Field required`)."""
    if response.status_code < 400:
        return None
    error = _error(response)
    if response.status_code == 422:
        assert error["type"] == "validation_error", error
        for problem in error["message"].split("; "):
            where, _, what = problem.partition(": ")
            assert where and what, f"422 problem without a location: {problem!r}"
    return True


@schemathesis.check
def no_key_is_401(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """A request without a key is 401 `unauthorized`, whatever else is wrong with it."""
    headers = response.request.headers
    if "x-api-key" in headers or "authorization" in headers:
        return None
    assert response.status_code == 401, f"{response.status_code} without a key: {response.text!r}"
    assert _error(response)["type"] == "unauthorized"
    return True


@dataclass
class Run:
    """What one schemathesis run did: responses by operation and status, failed checks."""

    responses: dict[str, Counter[int | str]] = field(default_factory=lambda: defaultdict(Counter))
    failures: dict[tuple[str, str, str], str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    phases: Counter[str] = field(default_factory=Counter)

    @property
    def cases(self) -> int:
        return sum(sum(c.values()) for c in self.responses.values())

    def report(self) -> str:
        operations = len(set(self.responses) & OPERATIONS)
        lines = [f"{operations} operations, {self.cases} cases {dict(self.phases)}"]
        for op, c in sorted(self.responses.items()):
            lines.append(f"  {op:26} {sum(c.values()):4}  {dict(sorted(c.items(), key=str))}")
        return "\n".join(lines)


def fuzz(schema: BaseSchema) -> Run:
    """Every phase of `schemathesis run` on every operation (the stateful one chains operations
    by the links it infers): the CLI's engine, in this process."""
    run = Run()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            label = recorder.label  # the operation (also for its unexpected-method cases)
            for case_id in recorder.cases:
                interaction = recorder.interactions.get(case_id)
                response = interaction.response if interaction is not None else None
                run.phases[event.phase.value] += 1
                run.responses[label][response.status_code if response else "no response"] += 1
                answer = f"{response.status_code} {response.text[:300]!r}" if response else ""
                for check in recorder.checks.get(case_id, []):
                    if check.failure_info is not None:
                        failure = check.failure_info.failure
                        run.failures.setdefault(
                            (label, check.name, failure.title),
                            f"{failure}\n{answer}\n{check.failure_info.code_sample}",
                        )
        elif isinstance(event, events.NonFatalError):
            run.errors.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            raise event.exception
    return run


def _check(run: Run, capsys: pytest.CaptureFixture[str], name: str) -> None:
    with capsys.disabled():  # the counts, in the log of every run
        print(f"\nschemathesis, {name}: {run.report()}")
    problems = run.errors + [
        f"{label} [{check}]: {text}" for (label, check, _), text in run.failures.items()
    ]
    assert not problems, f"{len(problems)} problems:\n\n" + "\n\n".join(problems)
    assert set(run.responses) >= OPERATIONS, f"not fuzzed: {OPERATIONS - set(run.responses)}"


def test_no_5xx_and_every_error_says_what_was_wrong(
    authed_schema: BaseSchema, capsys: pytest.CaptureFixture[str]
) -> None:
    _check(fuzz(authed_schema), capsys, "with a key")


def test_without_a_key_every_operation_is_401(
    anonymous_schema: BaseSchema, capsys: pytest.CaptureFixture[str]
) -> None:
    _check(fuzz(anonymous_schema), capsys, "without a key")


def test_info_answers_without_a_key(api_url: str) -> None:
    """Studio reads `/info` before it has a key; under plain uvicorn it is the app's own."""
    r = httpx.get(f"{api_url}/info", timeout=30)
    assert r.status_code == 200 and r.json()["version"] == api.app.version
