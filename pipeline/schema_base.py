"""What every params schema shares: strict models (a typo is an error), the error type, size checks."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

class ConfigError(ValueError):
    """Invalid params; ``problems`` holds one human-readable line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _power_of_two(value: int) -> int:
    if value & (value - 1):
        raise ValueError("must be a power of two (8, 16, 32 or 64)")
    return value

