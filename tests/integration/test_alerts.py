"""Budget alerts: once per threshold per budget per period, to a real HTTP receiver.

The receiver is `http.server` in a thread started by the test; model calls go through
ChatOpenAI to the fake OpenAI-compatible server; the ledger is a real SQLite file or Postgres.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from typer.testing import CliRunner

from agents import registry
from agents.llm.factory import create_chat_model
from agents.serve.cli import app as cli
from agents.usage.alerts import AlertConfig, Alerter, get_alerter, list_alerts
from agents.usage.budgets import make_budget, set_budget
from agents.usage.ledger import Ledger, LedgerRow, get_ledger
from agents.usage.limits import QuotaExceededError
from tests.fakes.openai_server import FakeServer

CHAT = "chatops_advanced"
PROMPT = "alert me #in=100 #out=10"  # 110 tokens a call


class Receiver:
    """A webhook receiver: records each POST, answers `statuses` in turn (then 200), and
    optionally holds every request until `release` is set."""

    def __init__(self, statuses: list[int] | None = None, hold: bool = False) -> None:
        self.posts: list[dict[str, Any]] = []
        self.statuses = list(statuses or [])
        self.got = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append(json.loads(body))
                receiver.got.set()
                receiver.release.wait(60)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for r in made:
        r.close()


def _env(monkeypatch: pytest.MonkeyPatch, fake: FakeServer, hook: str, **env: str) -> None:
    """Process settings (what the callback's alerter reads): billed fake server, no cache."""
    base = {
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": fake.base_url,
        "QUANT_GENAI_BASE_URL_BILLED": "true",
        "QUANT_GENAI_STREAM_USAGE": "true",
        "QUANT_GENAI_MAX_RETRIES": "0",
        "QUANT_GENAI_CACHE": "off",
        "QUANT_GENAI_ALERT_WEBHOOK_URL": hook,
    }
    for name, value in {**base, **env}.items():
        monkeypatch.setenv(name, value)
    registry.reset()


def _token_budget(user: str, limit: int) -> None:
    budget = make_budget(scope="user", period="day", unit="tokens", limit=limit, user_id=user)
    set_budget(get_ledger().engine, budget)


def test_one_post_per_crossed_threshold(
    monkeypatch: pytest.MonkeyPatch,
    fake_openai: FakeServer,
    receivers: list[Receiver],
    caplog: pytest.LogCaptureFixture,
) -> None:
    rx = Receiver()
    receivers.append(rx)
    _env(monkeypatch, fake_openai, rx.url)
    _token_budget("al", 400)
    chat = create_chat_model(CHAT, user_id="al", max_tokens=20)
    with caplog.at_level(logging.WARNING, logger="agents.usage.alerts"):
        for _ in range(4):  # 110, 220 (55%), 330 (82.5%), 440 tokens (110%)
            chat.invoke(PROMPT)
        with pytest.raises(QuotaExceededError, match="daily token budget of user 'al'"):
            chat.invoke(PROMPT)
    assert get_alerter().flush(10)
    assert [p["threshold_pct"] for p in rx.posts] == [50.0, 80.0, 100.0]
    first = rx.posts[0]
    assert first["type"] == "budget_alert" and first["scope"] == "user"
    assert (first["user_id"], first["unit"], first["limit"], first["spent"]) == (
        "al",
        "tokens",
        400,
        220,
    )
    assert "user 'al' has used 55.0% of its daily tokens budget" in first["message"]
    warned = [r.getMessage() for r in caplog.records if "budget alert" in r.getMessage()]
    assert len(warned) == 3
    shown = list_alerts(get_ledger().engine, user_id="al")
    assert [a["threshold_pct"] for a in shown] == [100.0, 80.0, 50.0]  # newest first
    assert {a["webhook_status"] for a in shown} == {"sent"}
    assert list_alerts(get_ledger().engine, user_id="someone else") == []
    # evaluated again (another call, another worker): nothing new is sent
    budgets = get_ledger().applicable_budgets("al", CHAT)
    assert get_alerter().evaluate(get_ledger().engine, budgets) == []
    res = CliRunner().invoke(cli, ["alerts", "--user", "al", "--json"])
    assert res.exit_code == 0 and len(json.loads(res.output)) == 3
    table = CliRunner().invoke(cli, ["usage", "--user", "al"])
    assert "Budget alerts this month" in table.output and "100%" in table.output


def test_a_failing_receiver_is_retried(
    monkeypatch: pytest.MonkeyPatch, fake_openai: FakeServer, receivers: list[Receiver]
) -> None:
    flaky = Receiver(statuses=[500])
    receivers.append(flaky)
    _env(monkeypatch, fake_openai, flaky.url)
    _token_budget("re", 200)
    create_chat_model(CHAT, user_id="re", max_tokens=20).invoke(PROMPT)  # 55%
    assert get_alerter().flush(10)
    assert len(flaky.posts) == 2 and flaky.posts[0] == flaky.posts[1]  # the same alert again
    (alert,) = list_alerts(get_ledger().engine, user_id="re")
    assert (alert["webhook_status"], alert["webhook_attempts"]) == ("sent", 2)

    broken = Receiver(statuses=[500] * 10)
    receivers.append(broken)
    _env(monkeypatch, fake_openai, broken.url, QUANT_GENAI_ALERT_WEBHOOK_RETRIES="1")
    _token_budget("re2", 200)
    create_chat_model(CHAT, user_id="re2", max_tokens=20).invoke(PROMPT)
    assert get_alerter().flush(10)
    assert len(broken.posts) == 2  # one try and one retry, then given up
    (alert,) = list_alerts(get_ledger().engine, user_id="re2")
    assert (alert["webhook_status"], alert["webhook_attempts"]) == ("failed", 2)


def test_a_hung_receiver_never_holds_up_the_call(
    monkeypatch: pytest.MonkeyPatch, fake_openai: FakeServer, receivers: list[Receiver]
) -> None:
    hung = Receiver(hold=True)
    receivers.append(hung)
    _env(monkeypatch, fake_openai, hung.url, QUANT_GENAI_ALERT_WEBHOOK_TIMEOUT_S="60")
    _token_budget("hu", 200)
    reply = create_chat_model(CHAT, user_id="hu", max_tokens=20).invoke(PROMPT)  # 55%
    assert reply.content  # the call returned ...
    assert hung.got.wait(10)  # ... and its alert's POST is being held by the receiver
    assert not hung.release.is_set() and not get_alerter().flush(0.2)  # still blocked
    # a second call while the webhook thread is stuck returns too
    assert create_chat_model(CHAT, user_id="hu", max_tokens=20).invoke(PROMPT).content
    hung.release.set()
    assert get_alerter().flush(10)
    assert [p["threshold_pct"] for p in hung.posts] == [50.0, 80.0, 100.0]


def test_two_workers_record_each_alert_once(ledger_url: str) -> None:
    ledger = Ledger(ledger_url)
    budget = make_budget(scope="service", period="month", unit="usd", limit=1.0, service=CHAT)
    set_budget(ledger.engine, budget)
    ledger.record(
        LedgerRow(
            request_id="big",
            user_id="w",
            service=CHAT,
            model="gpt-4o-mini",
            served_model="gpt-4o-mini",
            route="openai",
            cost_nanousd=850_000_000,
            list_price_nanousd=850_000_000,
        )
    )
    workers = [Alerter(AlertConfig()) for _ in range(4)]
    applying = ledger.applicable_budgets("w", CHAT)
    new: list[dict[str, Any]] = []
    start = threading.Barrier(len(workers))

    def evaluate(alerter: Alerter) -> None:
        start.wait()
        for _ in range(3):
            new.extend(alerter.evaluate(ledger.engine, applying))

    threads = [threading.Thread(target=evaluate, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a["threshold_pct"] for a in new) == [50.0, 80.0]  # 85%: two, once each
    assert len(list_alerts(ledger.engine)) == 2
