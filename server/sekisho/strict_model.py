"""The base of every settings model: unknown keys are errors (a misspelt key is refused, not
ignored) and values are frozen. A leaf, so the config package and the domain packages whose
settings it includes ([[trust.issuers]], [decision_log], [policy.shadow]) share one rule
without importing each other."""

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)
