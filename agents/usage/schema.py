"""The ledger database's tables (SQLAlchemy Core): calls, reservations, budgets, alerts.

`llm_calls` holds one row per model call; `quota_reservations` the worst case of each call in
flight (in USD and in tokens, with its user and service, so every budget that applies can count
it); `budgets` the limits an admin set at runtime; `budget_alerts` one row per threshold crossed
per budget per period (a unique key, so two workers can never both send one alert).
`create_schema` creates what is missing and adds the columns older ledgers lack.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

llm_calls = sa.Table(
    "llm_calls",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("ts", sa.DateTime(), nullable=False, index=True),
    sa.Column("request_id", sa.String(64), nullable=False, unique=True),
    sa.Column("user_id", sa.String(256), index=True),
    sa.Column("service", sa.String(64), index=True),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("served_model", sa.String(256)),
    sa.Column("route", sa.String(16)),
    sa.Column("input_tokens", sa.BigInteger(), nullable=False, default=0),
    sa.Column("cached_input_tokens", sa.BigInteger(), nullable=False, default=0),
    sa.Column("output_tokens", sa.BigInteger(), nullable=False, default=0),
    sa.Column("reasoning_tokens", sa.BigInteger(), nullable=False, default=0),
    sa.Column("cost_nanousd", sa.BigInteger()),  # NULL = unpriced
    sa.Column("list_price_nanousd", sa.BigInteger()),
    sa.Column("unpriced", sa.Boolean(), nullable=False, default=False),
    sa.Column("latency_ms", sa.Float()),
    sa.Column("cache_hit", sa.Boolean(), nullable=False, default=False),
    sa.Column("error", sa.Text()),
    # tokens counted locally (the endpoint reported no usage), priced from the catalog
    sa.Column("estimated", sa.Boolean(), nullable=False, default=False, server_default=sa.false()),
)

quota_reservations = sa.Table(
    "quota_reservations",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(256), nullable=False, index=True),  # "" = no user
    sa.Column("amount_nanousd", sa.BigInteger(), nullable=False),
    sa.Column("expires_at", sa.DateTime(), nullable=False),
    sa.Column("service", sa.String(64)),
    sa.Column("amount_tokens", sa.BigInteger(), nullable=False, server_default="0"),
)

budgets = sa.Table(
    "budgets",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("scope", sa.String(16), nullable=False),
    sa.Column("user_id", sa.String(256), nullable=False, server_default=""),  # "" = any
    sa.Column("service", sa.String(64), nullable=False, server_default=""),  # "" = any
    sa.Column("period", sa.String(8), nullable=False),
    sa.Column("unit", sa.String(8), nullable=False),
    sa.Column("limit_amount", sa.BigInteger(), nullable=False),  # nano-USD or tokens
    sa.Column("updated_at", sa.DateTime(), nullable=False),
    sa.Column("updated_by", sa.String(256)),
    sa.UniqueConstraint("scope", "user_id", "service", "period", "unit", name="uq_budget"),
)

budget_alerts = sa.Table(
    "budget_alerts",
    metadata,
    sa.Column("id", _ID, primary_key=True),
    sa.Column("budget_key", sa.String(400), nullable=False),
    sa.Column("period_start", sa.DateTime(), nullable=False),
    sa.Column("threshold_pct", sa.Float(), nullable=False),
    sa.Column("ts", sa.DateTime(), nullable=False, index=True),
    sa.Column("scope", sa.String(16), nullable=False),
    sa.Column("user_id", sa.String(256), index=True),
    sa.Column("service", sa.String(64)),
    sa.Column("period", sa.String(8), nullable=False),
    sa.Column("unit", sa.String(8), nullable=False),
    sa.Column("limit_amount", sa.BigInteger(), nullable=False),
    sa.Column("spent_amount", sa.BigInteger(), nullable=False),
    sa.Column("webhook_status", sa.String(16), nullable=False, server_default="none"),
    sa.Column("webhook_attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("webhook_error", sa.Text()),
    sa.UniqueConstraint("budget_key", "period_start", "threshold_pct", name="uq_budget_alert"),
)

# Columns added after a table first shipped: (table, column, DDL type and default).
_ADDED_COLUMNS = (
    ("quota_reservations", "service", "VARCHAR(64)"),
    ("quota_reservations", "amount_tokens", "BIGINT NOT NULL DEFAULT 0"),
    ("llm_calls", "estimated", "BOOLEAN NOT NULL DEFAULT FALSE"),
)


def create_schema(engine: sa.Engine) -> None:
    """Create the missing tables and add the columns an older ledger's tables lack."""
    try:
        metadata.create_all(engine, checkfirst=True)
    except sa.exc.DBAPIError:  # another process created a table between check and create
        metadata.create_all(engine, checkfirst=True)
    inspector = sa.inspect(engine)
    for table, column, ddl in _ADDED_COLUMNS:
        have = {c["name"] for c in inspector.get_columns(table)}
        if column in have:
            continue
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {ddl}")
        except sa.exc.DBAPIError:  # another process added it first
            if column not in {c["name"] for c in sa.inspect(engine).get_columns(table)}:
                raise
