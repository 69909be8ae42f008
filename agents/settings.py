"""Runtime settings, read once from the environment and `.env`.

Everything the runtime needs to know about its surroundings lives here so that no other module
reads `os.environ` directly: one place to document, validate and override (tests pass a
`Settings(...)` explicitly).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agents.registry import cached

Backend = Literal["auto", "openai", "local"]


class ModelRoute(BaseModel):
    """Where one logical catalog model is served when it is not plain OpenAI.

    `served_model` is the name the endpoint knows the model by (e.g. an Ollama tag).
    """

    base_url: str
    served_model: str | None = None
    api_key: SecretStr | None = None
    stream_usage: bool | None = None
    billed: bool = Field(
        default=False,
        description="True when this endpoint charges catalog prices (a proxy "
        "to OpenAI); False for self-hosted servers, whose calls cost $0 beside the list price",
    )


class Settings(BaseSettings):
    """All environment knobs; see README "Configuration" for the full table."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")
    backend: Backend = Field(
        default="auto",
        validation_alias="QUANT_GENAI_BACKEND",
        description="auto: OpenAI(-compatible) when OPENAI_API_KEY is set, else the local model",
    )
    model_routes: dict[str, ModelRoute] = Field(
        default_factory=dict,
        validation_alias="QUANT_GENAI_MODEL_ROUTES",
        description="JSON: catalog id -> {base_url, served_model, api_key, stream_usage}",
    )
    base_url_billed: bool = Field(
        default=True,
        validation_alias="QUANT_GENAI_BASE_URL_BILLED",
        description="Calls to OPENAI_BASE_URL cost catalog prices (false for a self-hosted server)",
    )
    stream_usage: bool | None = Field(
        default=None,
        validation_alias="QUANT_GENAI_STREAM_USAGE",
        description="Ask for usage in streams; default on for OpenAI and the local model, "
        "off for other OpenAI-compatible base URLs (some reject stream_options)",
    )
    request_timeout_s: float = Field(default=60.0, gt=0, validation_alias="QUANT_GENAI_TIMEOUT_S")
    local_timeout_s: float = Field(
        default=300.0,
        gt=0,
        validation_alias="QUANT_GENAI_LOCAL_TIMEOUT_S",
        description="Request timeout for the embedded model: CPU inference on a busy machine "
        "can take minutes where a hosted API takes seconds",
    )
    max_retries: int = Field(default=2, ge=0, validation_alias="QUANT_GENAI_MAX_RETRIES")
    fallback: bool = Field(
        default=True,
        validation_alias="QUANT_GENAI_FALLBACK",
        description="After a model's endpoint fails (connection, timeout, 5xx, 429) and its "
        "retries are spent, the graphs try one other model the service's policy allows that is "
        "served elsewhere; off = fail with the error",
    )

    daily_budget_usd: float | None = Field(
        default=None,
        gt=0,
        validation_alias="QUANT_GENAI_DAILY_BUDGET_USD",
        description="Per-user spend limit per UTC day (billed USD); unset = no quota",
    )
    user_budgets_usd: dict[str, float] = Field(
        default_factory=dict,
        validation_alias="QUANT_GENAI_USER_BUDGETS_USD",
        description='Per-user daily budgets overriding the default, JSON {"alice": 5.0}',
    )

    data_dir: Path = Field(default=Path("data"), validation_alias="QUANT_GENAI_DATA_DIR")
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    chromadb_path: Path | None = Field(default=None, validation_alias="CHROMADB_PATH")
    chroma_host: str | None = Field(default=None, validation_alias="CHROMA_HOST")

    local_model_path: Path | None = Field(
        default=None,
        validation_alias="QUANT_GENAI_LOCAL_MODEL_PATH",
        description="One GGUF that serves every tier (one server, QUANT_GENAI_LOCAL_PORT/CTX) "
        "instead of the packaged Qwen2.5-Coder-0.5B (mini) and 1.5B (standard and above)",
    )
    local_model_host: str = Field(default="127.0.0.1", validation_alias="QUANT_GENAI_LOCAL_HOST")
    local_model_port: int = Field(
        default=8766,
        ge=1,
        le=65535,
        validation_alias="QUANT_GENAI_LOCAL_PORT",
        description="Port of the default embedded model's server (the 0.5B, or the GGUF given "
        "as QUANT_GENAI_LOCAL_MODEL_PATH)",
    )
    local_model_ctx: int = Field(
        default=8192,
        ge=512,
        validation_alias="QUANT_GENAI_LOCAL_CTX",
        description="Tokens per request of the embedded models (each server holds 2 slots)",
    )
    local_model_threads: int = Field(default=2, ge=1, validation_alias="QUANT_GENAI_LOCAL_THREADS")
    local_large_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        validation_alias="QUANT_GENAI_LOCAL_LARGE_PORT",
        description="Port of the 1.5B's server; unset = QUANT_GENAI_LOCAL_PORT + 1",
    )
    local_large_ctx: int | None = Field(
        default=None,
        ge=512,
        validation_alias="QUANT_GENAI_LOCAL_LARGE_CTX",
        description="Tokens per request of the 1.5B; unset = QUANT_GENAI_LOCAL_CTX",
    )

    # -- the REST / LangGraph server (agents/serve/auth.py, agents/serve/api.py) ----------
    api_keys: dict[str, str] | None = Field(
        default=None,
        repr=False,  # the keys are secrets: never in a repr, log or trace
        validation_alias="QUANT_GENAI_API_KEYS",
        description='JSON {"api key": "user id"}; unset on embedded defaults = the demo key',
    )
    admin_users: list[str] = Field(
        default_factory=list,
        validation_alias="QUANT_GENAI_ADMIN_USERS",
        description="JSON list of user ids who may read every user's usage report",
    )
    rate_per_min: float = Field(
        default=60.0,
        ge=0,
        validation_alias="QUANT_GENAI_RATE_PER_MIN",
        description="Model-calling REST requests per user per minute (0 = no limit)",
    )
    rate_burst: int = Field(
        default=10,
        ge=1,
        validation_alias="QUANT_GENAI_RATE_BURST",
        description="Requests a user may make at once before the per-minute rate applies",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        validation_alias="QUANT_GENAI_METRICS_TOKEN",
        description="Bearer token a Prometheus scraper sends to GET /metrics (admins' API keys "
        "work too); unset = admins only",
    )
    max_body_bytes: int = Field(
        default=1_000_000,
        ge=1024,
        validation_alias="QUANT_GENAI_MAX_BODY_BYTES",
        description="Largest REST request body; a bigger one is refused with 413 before it is "
        "read (dataset uploads have their own limit, QUANT_GENAI_MAX_DATASET_BYTES)",
    )
    max_dataset_bytes: int = Field(
        default=8_000_000,
        ge=1024,
        validation_alias="QUANT_GENAI_MAX_DATASET_BYTES",
        description="Largest OHLCV CSV a user may upload (POST /v1/datasets)",
    )

    # -- cost controls: shared limits, budgets' alerts, the response cache -------------------
    redis_url: SecretStr | None = Field(
        default=None,
        repr=False,  # may carry a password
        validation_alias="REDIS_URL",
        description="redis://host:6379/0 — rate limits and the response cache shared by every "
        "worker and server; unset = in this process's memory (limits) and SQLite (cache)",
    )
    rate_limits: str | None = Field(
        default=None,
        validation_alias="QUANT_GENAI_RATE_LIMITS",
        description="The request and token limits per (user, service) and (service, model): a "
        "TOML or JSON file's path, or inline JSON (docs/cost-controls.md); unset = the defaults",
    )
    alert_webhook_url: str | None = Field(
        default=None,
        validation_alias="QUANT_GENAI_ALERT_WEBHOOK_URL",
        description="Budget alerts are POSTed here as JSON (retried, with a timeout; a dead "
        "webhook never fails a model call); unset = log line and GET /v1/alerts only",
    )
    alert_thresholds_pct: list[float] = Field(
        default_factory=lambda: [50.0, 80.0, 100.0],
        validation_alias="QUANT_GENAI_ALERT_THRESHOLDS",
        description="Percentages of each budget at which an alert fires, once per period",
    )
    alert_webhook_timeout_s: float = Field(
        default=5.0, gt=0, validation_alias="QUANT_GENAI_ALERT_WEBHOOK_TIMEOUT_S"
    )
    alert_webhook_retries: int = Field(
        default=3, ge=0, validation_alias="QUANT_GENAI_ALERT_WEBHOOK_RETRIES"
    )
    cache: Literal["off", "exact", "semantic"] = Field(
        default="exact",
        validation_alias="QUANT_GENAI_CACHE",
        description="The per-user response cache: exact prompt match, also semantically "
        "similar prompts (MiniLM), or off; services switch it in catalog.toml",
    )
    cache_similarity: float = Field(
        default=0.90,
        gt=0,
        le=1,
        validation_alias="QUANT_GENAI_CACHE_SIMILARITY",
        description="Cosine similarity from which the semantic cache serves a stored answer "
        "(with the same numbers, tickers and directions; bench/cache.py picked 0.90)",
    )
    cache_ttl_s: int = Field(
        default=86_400,
        ge=1,
        validation_alias="QUANT_GENAI_CACHE_TTL_S",
        description="How long a cached answer is served (Redis TTL; SQL rows expire too)",
    )
    cache_timeout_s: float = Field(
        default=0.25,
        gt=0,
        validation_alias="QUANT_GENAI_CACHE_TIMEOUT_S",
        description="Redis socket timeout of the cache: slower = a miss and a WARNING",
    )

    @field_validator("alert_thresholds_pct")
    @classmethod
    def _thresholds(cls, value: list[float]) -> list[float]:
        bad = [t for t in value if not 0 < t <= 1000]
        if bad:
            raise ValueError(f"alert thresholds are percentages in (0, 1000]; got {bad}")
        return sorted(set(value))

    @field_validator("user_budgets_usd")
    @classmethod
    def _positive_budgets(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {u: b for u, b in value.items() if not b > 0 or not u.strip()}
        if bad:
            raise ValueError(
                f"per-user budgets must be positive USD amounts for non-blank user ids; got {bad}"
            )
        return value

    @model_validator(mode="after")
    def _two_local_ports(self) -> Settings:
        if (
            self.local_model_path is None
            and self.resolved_local_large_port == self.local_model_port
        ):
            raise ValueError(
                "QUANT_GENAI_LOCAL_LARGE_PORT must differ from QUANT_GENAI_LOCAL_PORT: "
                "each embedded model has its own server"
            )
        return self

    @field_validator("openai_api_key", mode="before")
    @classmethod
    def _blank_key_is_none(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    _fingerprint: str | None = PrivateAttr(default=None)

    @property
    def fingerprint(self) -> str:
        """A digest of every value (secrets included): the key of what is built from these
        settings, so two Settings objects with the same values share models and ledgers."""
        if self._fingerprint is None:

            def plain(value: Any) -> Any:
                if isinstance(value, SecretStr):
                    return value.get_secret_value()
                if isinstance(value, BaseModel):
                    return {k: plain(v) for k, v in value}
                if isinstance(value, dict):
                    return {k: plain(v) for k, v in value.items()}
                if isinstance(value, list | tuple):
                    return [plain(v) for v in value]
                return value

            data = json.dumps({k: plain(v) for k, v in self}, sort_keys=True, default=str)
            self._fingerprint = hashlib.sha256(data.encode("utf-8")).hexdigest()
        return self._fingerprint

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def resolved_local_large_port(self) -> int:
        """The 1.5B's port: QUANT_GENAI_LOCAL_LARGE_PORT, else the next one after the 0.5B's."""
        if self.local_large_port is not None:
            return self.local_large_port
        return self.local_model_port + 1 if self.local_model_port < 65535 else 65534

    @property
    def resolved_local_large_ctx(self) -> int:
        return self.local_large_ctx if self.local_large_ctx is not None else self.local_model_ctx

    @property
    def resolved_database_url(self) -> str:
        """The ledger URL: DATABASE_URL, else a SQLite file under the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_data_dir / 'ledger.sqlite3'}"

    @property
    def resolved_chromadb_path(self) -> Path:
        return (self.chromadb_path or self.resolved_data_dir / "chroma").expanduser().resolve()

    @property
    def uses_openai(self) -> bool:
        """True when calls go to OpenAI or an OpenAI-compatible endpoint rather than local."""
        if self.backend == "local":
            return False
        if self.backend == "openai":
            return True
        return self.openai_api_key is not None


@cached("settings")
def get_settings() -> Settings:
    """The process-wide settings (tests build their own `Settings` instead)."""
    return Settings()
