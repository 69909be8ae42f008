"""What the static checks report: one `CodeIssue` per reason, gathered in a `ValidationReport`."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class CodeIssue(BaseModel):
    """One reason the code was rejected; `code` is stable (tests and prompts key on it)."""

    code: str
    message: str
    line: int | None = None
    col: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}[{self.code}] {self.message}"


class ValidationReport(BaseModel):
    """The static verdict on a piece of generated code."""

    ok: bool
    strategy_class: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    errors: list[CodeIssue] = Field(default_factory=list)

    @property
    def codes(self) -> set[str]:
        return {e.code for e in self.errors}

    def summary(self) -> str:
        """All errors, one per line: what the repair loop shows the model."""
        return "\n".join(str(e) for e in self.errors) if self.errors else "ok"
