"""What `faithfulness.check` reports: discrepancies, additions (violations or assumptions), and
the repair instructions a model gets (kept apart so `faithfulness` stays within its size)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Discrepancy(BaseModel):
    """The request states something the spec contradicts or leaves out."""

    model_config = ConfigDict(frozen=True)

    field: str = Field(description="The spec field or rule, e.g. stop_loss_pct, entry")
    message: str = Field(description="Names the field and both values")
    fix: str = Field(description="What the repair must do")


class Addition(BaseModel):
    """A value the spec has that the request never states: dropped (a violation) or kept."""

    model_config = ConfigDict(frozen=True)

    field: str
    value: str
    violation: bool = Field(description="True: the repair drops it; False: a kept assumption")
    message: str
    fix: str = ""


class FaithfulnessReport(BaseModel):
    """What `check` found; `faithful` iff no discrepancies and no violating additions."""

    discrepancies: list[Discrepancy] = Field(default_factory=list)
    additions: list[Addition] = Field(default_factory=list)

    @property
    def violations(self) -> list[Addition]:
        return [a for a in self.additions if a.violation]

    @property
    def assumptions(self) -> list[Addition]:
        return [a for a in self.additions if not a.violation]

    @property
    def faithful(self) -> bool:
        return not self.discrepancies and not self.violations

    def repair_instructions(self) -> str:
        """Every problem by name, for the model's repair prompt ("" when faithful)."""
        found: list[Discrepancy | Addition] = [*self.discrepancies, *self.violations]
        items = [f"- {p.message}. Fix: {p.fix}." for p in found]
        head = "The spec does not match the request. Fix every problem below, change nothing else"
        return head + " and return the whole spec:\n" + "\n".join(items) if items else ""
