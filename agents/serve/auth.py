"""API-key authentication and per-user ownership for the LangGraph server (`langgraph.json`).

One key → one user id, configured as `QUANT_GENAI_API_KEYS` (JSON `{"key": "user id"}`). On the
embedded defaults (no keys configured, no OpenAI key) the documented demo key `demo-key` maps to
`demo-user`; with an OpenAI key configured there is no demo key, so a forgotten setting cannot
open paid models to anyone. The REST app (`agents/serve/api.py`) uses the same functions, so a key
means the same user on both surfaces.

Ownership: threads, runs and crons get `owner` metadata on create and every read, search, update
and delete is filtered by it, so user B cannot see user A's threads. Every run's context gets
`user_id` = the authenticated user, overwriting anything the request body said: the graphs scope
models, costs and retrieval by `Context.user_id`, so it must never come from the caller.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from typing import Any

from langgraph_sdk import Auth

from agents.registry import cached
from agents.settings import Settings, get_settings

log = logging.getLogger(__name__)

DEMO_KEY = "demo-key"
DEMO_USER = "demo-user"
API_KEY_HEADER = "x-api-key"
OWNER = "owner"


class InvalidApiKeysError(ValueError):
    """QUANT_GENAI_API_KEYS is malformed (the server refuses to start with it)."""


def key_map(settings: Settings | None = None) -> dict[str, str]:
    """The configured key → user id mapping (the demo key on embedded defaults)."""
    s = settings or get_settings()
    if s.api_keys is None:
        return {} if s.uses_openai else {DEMO_KEY: DEMO_USER}
    for key, user in s.api_keys.items():
        if not key.strip() or not user.strip() or user != user.strip():
            raise InvalidApiKeysError(
                "QUANT_GENAI_API_KEYS: keys and user ids must be non-empty, "
                "user ids without leading or trailing whitespace"
            )
    return dict(s.api_keys)


@cached("api keys")
def _cached_key_map() -> tuple[tuple[bytes, str], ...]:
    """The process's key map as bytes (for `hmac.compare_digest`); `agents.registry.reset()`
    forgets it, so the next request reads the settings again."""
    return tuple((k.encode("utf-8"), u) for k, u in key_map().items())


def user_for_key(key: str | None) -> str | None:
    """The user id of an API key, or None; compares in constant time against every key."""
    if not key:
        return None
    given = key.encode("utf-8")
    found: str | None = None
    for candidate, user in _cached_key_map():
        if hmac.compare_digest(candidate, given):
            found = user
    return found


def key_from_headers(headers: Mapping[str, str]) -> str | None:
    """`x-api-key: K` or `Authorization: Bearer K` (header names lower-case)."""
    key = headers.get(API_KEY_HEADER)
    if key:
        return key.strip()
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def is_admin(user_id: str, settings: Settings | None = None) -> bool:
    return user_id in (settings or get_settings()).admin_users


# --------------------------------------------------------------------------------------------
# The LangGraph server's auth object
# --------------------------------------------------------------------------------------------

auth = Auth()
_cached_key_map()  # read settings and .env at import, not on the server's event loop


@auth.authenticate
async def authenticate(headers: dict[bytes, bytes]) -> Auth.types.MinimalUserDict:
    """Map the request's API key to its user; anything else is a 401."""
    text = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers.items()}
    key = key_from_headers(text)
    if key is None:
        raise Auth.exceptions.HTTPException(
            status_code=401, detail=f"missing API key: send '{API_KEY_HEADER}' or a Bearer token"
        )
    user = user_for_key(key)
    if user is None:
        raise Auth.exceptions.HTTPException(status_code=401, detail="invalid API key")
    return {"identity": user, "is_authenticated": True}


def _own(ctx: Auth.types.AuthContext, value: Any) -> dict[str, str]:
    """Stamp the owner on what is written; the same dict filters what is read."""
    owner = {OWNER: ctx.user.identity}
    if isinstance(value, dict):
        metadata = value.get("metadata")
        if not isinstance(metadata, dict):
            metadata = value["metadata"] = {}
        metadata.update(owner)
    return owner


@auth.on
async def owner_only(ctx: Auth.types.AuthContext, value: Any) -> dict[str, str]:
    """Default for threads, runs, crons and assistants the user creates: owner-scoped."""
    return _own(ctx, value)


@auth.on.threads.create_run
async def run_as_caller(
    ctx: Auth.types.AuthContext, value: Auth.types.RunsCreate
) -> dict[str, str]:
    """The run is the caller's: owner-scoped, and `Context.user_id` is the caller's id."""
    kwargs = value.get("kwargs")
    if isinstance(kwargs, dict):
        context = kwargs.get("context")
        if not isinstance(context, dict):
            context = kwargs["context"] = {}
        context["user_id"] = ctx.user.identity
        config = kwargs.get("config")
        if isinstance(config, dict) and isinstance(config.get("configurable"), dict):
            config["configurable"]["user_id"] = ctx.user.identity
    return _own(ctx, value)


@auth.on.assistants.read
async def read_assistants(ctx: Auth.types.AuthContext, value: Auth.types.AssistantsRead) -> None:
    """The four graphs' assistants are shared (system-created); reading them is open."""
    return None


@auth.on.assistants.search
async def search_assistants(
    ctx: Auth.types.AuthContext, value: Auth.types.AssistantsSearch
) -> None:
    return None


@auth.on.store
async def own_namespace(ctx: Auth.types.AuthContext, value: Any) -> None:
    """Store items live under the user's own namespace prefix."""
    namespace = tuple(value.get("namespace") or ())
    if not namespace or namespace[0] != ctx.user.identity:
        value["namespace"] = (ctx.user.identity, *namespace)
