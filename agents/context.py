"""Runtime context shared by every service graph (LangGraph 1.x `context_schema`).

The user id is who the run is for: every model call, ledger row and retrieval is scoped by it.
Under the LangGraph server it comes from authentication, never from the request body.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(kw_only=True)
class Context:
    """Knobs every service accepts; service graphs subclass it for their own."""

    user_id: str = field(
        default="anonymous",
        metadata={"description": "Who the run is for; scopes models, costs and retrieval."},
    )
    model: str | None = field(
        default=None,
        metadata={
            "description": "Requested model id; validated against the service's policy "
            "(None = the service's default)."
        },
    )
