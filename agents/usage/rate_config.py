"""What the rate limits are: the packaged `rate_limits.toml`, the settings on top, the admin's
runtime overrides (stored in the ledger database) on top of those, and which number applies to
a (user, service) or (service, model) window.

A configuration document (TOML file, JSON file, inline JSON, or the admin's override) has the
keys of `rate_limits.toml`, which documents them line by line: `enabled`, `user`, `model`,
`users.<user>`, `models.<model>`, `services.<service>.{user, model, users.<u>, models.<m>}`,
each limit table of `requests_per_minute`, `request_burst` and `tokens_per_minute` (0 = no
limit). Layers are deep-merged, lowest first: packaged file, `QUANT_GENAI_RATE_PER_MIN` /
`QUANT_GENAI_RATE_BURST` (the default per-user request limit), `QUANT_GENAI_RATE_LIMITS`,
runtime overrides. Every layer is validated on its own, so an error names its source, the key
path and what is allowed (`RateLimitConfigError`).
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa

from agents.llm.catalog import MODEL_CATALOG, SERVICES, available_models
from agents.settings import Settings

PACKAGED = Path(__file__).with_name("rate_limits.toml")
LIMIT_FIELDS = ("requests_per_minute", "request_burst", "tokens_per_minute")
SERVICE_KEYS = ("user", "model", "users", "models")
TOP_KEYS = ("enabled", *SERVICE_KEYS, "services")
MAX_USER_ID = 200

Scope = Literal["user", "model"]


class RateLimitConfigError(ValueError):
    """A rate-limit document is wrong: says where (source and key path) and what is allowed."""

    def __init__(self, message: str, allowed: list[str] | None = None) -> None:
        super().__init__(message)
        self.allowed = allowed


# --------------------------------------------------------------------------------------------
# Validation of one layer (a plain dict, as TOML or JSON parse it)
# --------------------------------------------------------------------------------------------


def _fail(source: str, path: str, message: str, allowed: list[str] | None = None) -> None:
    where = f"{source}: {path}" if path else source
    raise RateLimitConfigError(f"{where}: {message}", allowed)


def _table(source: str, path: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        _fail(source, path, f"must be a table (object), not {type(value).__name__}")
    return value


def _number(source: str, path: str, value: Any, *, integer: bool, minimum: int) -> None:
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(source, path, f"must be a number, not {shown}")
    if not minimum <= value <= 1e12:  # exact for big ints; False for NaN and infinities
        _fail(source, path, f"must be between {minimum} and 1e12, not {shown}")
    if integer and not float(value).is_integer():
        _fail(source, path, f"must be a whole number, not {shown}")


def _check_limit(source: str, path: str, value: Any) -> None:
    for key, number in _table(source, path, value).items():
        if key not in LIMIT_FIELDS:
            _fail(source, f"{path}.{key}", "unknown limit", list(LIMIT_FIELDS))
        if number is not None:  # None: a patch's "delete this number"
            integer = key != "requests_per_minute"
            minimum = 1 if key == "request_burst" else 0
            _number(source, f"{path}.{key}", number, integer=integer, minimum=minimum)


def _check_named(source: str, path: str, value: Any, allowed: list[str] | None) -> None:
    """`users.<u>` (allowed None: any id) or `models.<m>` (one of `allowed`)."""
    for name, limit in _table(source, path, value).items():
        if allowed is not None and name not in allowed:
            _fail(source, f"{path}.{name}", f"unknown model {name!r}", allowed)
        if allowed is None and (not name.strip() or len(name) > MAX_USER_ID):
            _fail(source, f"{path}.{name!r}", f"a user id is 1-{MAX_USER_ID} characters")
        if limit is not None:
            _check_limit(source, f"{path}.{name}", limit)


def _check_keys(
    source: str, path: str, table: Mapping[str, Any], keys: tuple[str, ...], models: list[str]
) -> None:
    for key, value in table.items():
        here = f"{path}.{key}" if path else key
        if key not in keys:
            _fail(source, here, "unknown key", list(keys))
        if value is None or key in ("enabled", "services"):
            continue
        if key in ("user", "model"):
            _check_limit(source, here, value)
        else:
            _check_named(source, here, value, None if key == "users" else models)


def validate_layer(source: str, doc: Any, *, runtime: bool = False) -> dict[str, Any]:
    """`doc` checked against the keys of `rate_limits.toml` (names, types, ranges); returns a
    plain copy. `runtime`: the admin's overrides, where `enabled` is no key (files decide)."""
    table = _table(source, "", doc)
    keys = tuple(k for k in TOP_KEYS if not (runtime and k == "enabled"))
    _check_keys(source, "", table, keys, sorted(MODEL_CATALOG))
    if "enabled" in table and not isinstance(table["enabled"], bool):
        _fail(source, "enabled", f"must be true or false, not {table['enabled']!r}")
    services = table.get("services")
    for service, sub in ({} if services is None else _table(source, "services", services)).items():
        if service not in SERVICES:
            _fail(source, f"services.{service}", f"unknown service {service!r}", list(SERVICES))
        if sub is not None:
            allowed = [m.id for m in available_models(service)]
            sub_table = _table(source, f"services.{service}", sub)
            _check_keys(source, f"services.{service}", sub_table, SERVICE_KEYS, allowed)
    return json.loads(json.dumps(table))  # a plain copy (TOML's types are JSON's here)


def _limit_tables(doc: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """Every limit table of a (validated) document, with its key path."""
    found = [(k, doc[k]) for k in ("user", "model") if doc.get(k)]
    for k in ("users", "models"):
        found += [(f"{k}.{n}", t) for n, t in (doc.get(k) or {}).items() if t]
    for s, sub in (doc.get("services") or {}).items():
        found += [(f"services.{s}.{path}", t) for path, t in _limit_tables(sub or {})]
    return found


def check_merged(source: str, doc: Mapping[str, Any]) -> None:
    """What only the merged document can tell: a burst beside its rate."""
    for path, table in _limit_tables(doc):
        if table.get("request_burst") is not None and table.get("requests_per_minute") is None:
            _fail(source, f"{path}.request_burst", "needs requests_per_minute in the same table")


# --------------------------------------------------------------------------------------------
# Reading the layers, merging them
# --------------------------------------------------------------------------------------------


def merge(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """JSON merge patch (RFC 7396): tables merge key by key, `null` deletes, the rest replaces."""
    out = dict(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        elif isinstance(value, Mapping):
            out[key] = merge({}, value)  # drops the nulls inside a new table
        else:
            out[key] = value
    return out


def merge_layer(base: Mapping[str, Any], layer: Mapping[str, Any]) -> dict[str, Any]:
    """`merge`, where a table of `layer` that sets requests_per_minute without request_burst
    also drops the burst below it (the two are one setting: no burst = one 60 s window)."""
    layer = json.loads(json.dumps(layer))
    for _, table in _limit_tables(layer):
        if isinstance(table, dict) and table.get("requests_per_minute") is not None:
            table.setdefault("request_burst", None)
    return merge(base, layer)


def _parse_text(source: str, text: str, toml: bool) -> Any:
    try:
        return tomllib.loads(text) if toml else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise RateLimitConfigError(
            f"{source}: not valid {'TOML' if toml else 'JSON'} ({exc})"
        ) from exc


def settings_layer(value: str) -> dict[str, Any]:
    """`QUANT_GENAI_RATE_LIMITS`: inline JSON (starts with `{`), else a .toml or .json path."""
    source = "QUANT_GENAI_RATE_LIMITS"
    if value.lstrip().startswith("{"):
        return validate_layer(source, _parse_text(source, value, toml=False))
    path = Path(value).expanduser()
    if path.suffix not in (".toml", ".json"):
        raise RateLimitConfigError(
            f"{source}: {value!r} is neither inline JSON nor a .toml or .json file",
            [".toml", ".json", "inline JSON"],
        )
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise RateLimitConfigError(f"{source}: cannot read {path} ({exc.strerror})") from exc
    source = f"{source} ({path})"
    return validate_layer(source, _parse_text(source, text, toml=path.suffix == ".toml"))


def static_config(settings: Settings) -> dict[str, Any]:
    """Packaged file < QUANT_GENAI_RATE_PER_MIN / _BURST < QUANT_GENAI_RATE_LIMITS."""
    packaged = validate_layer(
        "rate_limits.toml", _parse_text("rate_limits.toml", PACKAGED.read_text("utf-8"), True)
    )
    env: dict[str, Any] = {"user": {"requests_per_minute": settings.rate_per_min}}
    if settings.rate_per_min > 0:
        env["user"]["request_burst"] = settings.rate_burst
    doc = merge_layer(packaged, env)
    if settings.rate_limits:
        doc = merge_layer(doc, settings_layer(settings.rate_limits))
    check_merged("QUANT_GENAI_RATE_LIMITS over rate_limits.toml", doc)
    return doc


# --------------------------------------------------------------------------------------------
# Which number applies
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """`amount` per `seconds` (requests or tokens)."""

    amount: int
    seconds: int

    def describe(self, unit: str) -> str:
        return f"{self.amount} {unit} per {self.seconds} s"


def request_window(per_min: float, burst: int | None) -> Window | None:
    """`burst` requests per `burst * 60 / per_min` s (whole seconds, rounded up), or without a
    burst `per_min` per 60 s; None for 0 (no limit)."""
    if per_min <= 0:
        return None
    amount = int(burst) if burst else max(1, math.floor(per_min))
    return Window(amount, max(1, math.ceil(amount * 60 / per_min)))


@dataclass(frozen=True)
class Limits:
    """The windows of one (user, service) or (service, model): None = no limit."""

    requests: Window | None
    tokens: Window | None

    def as_json(self) -> dict[str, Any]:
        def one(w: Window | None) -> dict[str, int] | None:
            return None if w is None else {"limit": w.amount, "window_s": w.seconds}

        return {"requests": one(self.requests), "tokens": one(self.tokens)}


class Effective:
    """A merged document and the lookups of `rate_limits.toml`'s precedence."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.doc = merge({}, doc)  # a validated document, without a patch's nulls
        self.enabled = bool(doc.get("enabled", True))

    def _tables(self, scope: Scope, service: str, name: str | None) -> list[Mapping[str, Any]]:
        svc = self.doc.get("services", {}).get(service, {})
        many = "users" if scope == "user" else "models"
        chain = [
            svc.get(many, {}).get(name) if name is not None else None,
            self.doc.get(many, {}).get(name) if name is not None else None,
            svc.get(scope),
            self.doc.get(scope),
        ]
        return [t for t in chain if t]

    def limits(self, scope: Scope, service: str, name: str | None) -> Limits:
        """`scope` "user": (user `name`, service); "model": (service, model `name`)."""
        tables = self._tables(scope, service, name)
        requests = tokens = None
        rate = next((t for t in tables if t.get("requests_per_minute") is not None), None)
        if rate is not None:
            requests = request_window(float(rate["requests_per_minute"]), rate.get("request_burst"))
        tpms = [t["tokens_per_minute"] for t in tables if t.get("tokens_per_minute") is not None]
        tpm = tpms[0] if tpms else 0
        if tpm > 0:
            tokens = Window(int(tpm), 60)
        return Limits(requests, tokens)

    def table(self) -> dict[str, Any]:
        """Per service: the default (user, service) limits, each user override, and the
        (service, model) limits of every model the service allows."""
        users = set(self.doc.get("users", {}))
        out: dict[str, Any] = {}
        for s in SERVICES:
            named = users | set(self.doc.get("services", {}).get(s, {}).get("users", {}))
            out[s] = {
                "user": self.limits("user", s, None).as_json(),
                "users": {u: self.limits("user", s, u).as_json() for u in sorted(named)},
                "models": {
                    m.id: self.limits("model", s, m.id).as_json() for m in available_models(s)
                },
            }
        return out


# --------------------------------------------------------------------------------------------
# The runtime overrides, in the ledger database
# --------------------------------------------------------------------------------------------

_meta = sa.MetaData()
OVERRIDES = sa.Table(
    "rate_limit_overrides",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True),  # one row, id 1
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("doc", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("updated_by", sa.String(MAX_USER_ID), nullable=False),
)


@dataclass(frozen=True)
class Overrides:
    version: int
    doc: dict[str, Any]
    updated_at: datetime | None
    updated_by: str | None

    def as_json(self) -> dict[str, Any]:
        at = None if self.updated_at is None else self.updated_at.isoformat() + "Z"
        by = self.updated_by
        return {"version": self.version, "overrides": self.doc, "updated_at": at, "updated_by": by}


class OverrideStore:
    """One row in the ledger database: the admin's overrides and a version every write bumps
    (processes compare versions; a write is a compare-and-set on it)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        try:
            _meta.create_all(engine, checkfirst=True)
        except sa.exc.DBAPIError:  # another worker created it between check and create
            _meta.create_all(engine, checkfirst=True)

    def read(self) -> Overrides:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(OVERRIDES).where(OVERRIDES.c.id == 1)).first()
        if row is None:
            return Overrides(0, {}, None, None)
        return Overrides(row.version, json.loads(row.doc), row.updated_at, row.updated_by)

    def write(self, doc: dict[str, Any], by: str, expect_version: int) -> bool:
        """Store `doc` if the stored version is still `expect_version`; False if another
        writer was first (the caller re-reads and re-applies its patch)."""
        values = {
            "version": expect_version + 1,
            "doc": json.dumps(doc, sort_keys=True),
            "updated_at": datetime.now(UTC).replace(tzinfo=None),
            "updated_by": by,
        }
        if expect_version == 0:  # the first write: the primary key decides between writers
            try:
                with self.engine.begin() as conn:
                    conn.execute(sa.insert(OVERRIDES).values(id=1, **values))
            except sa.exc.IntegrityError:
                return False
            return True
        with self.engine.begin() as conn:
            done = conn.execute(
                sa.update(OVERRIDES)
                .where(OVERRIDES.c.id == 1, OVERRIDES.c.version == expect_version)
                .values(**values)
            )
            return done.rowcount == 1
