"""What every params schema shares: strict models (a typo is an error), the error type, size checks."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

# Seeds reach numpy's legacy RandomState through scikit-learn's train_test_split, which takes only
# 0 .. 2**32 - 1 (torch.manual_seed and numpy's default_rng take more): one bound for every seed.
SEED_MAX = 2**32 - 1
# Characters str.splitlines() breaks at: a problem is printed as one line, whatever its keys hold.
_LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}


def seed_field(default: int = 0, description: str | None = None):
    """A seed: 0 .. :data:`SEED_MAX` (what every RNG the pipeline hands it to accepts)."""
    return Field(default, ge=0, le=SEED_MAX, description=description)


class ConfigError(ValueError):
    """Invalid params; ``problems`` holds one human-readable line per problem (line breaks inside a
    problem, from a key or value that holds them, are escaped so each stays one line)."""

    def __init__(self, problems: list[str]):
        self.problems = [str(p).translate(_LINE_BREAKS) for p in problems]
        super().__init__("\n".join(self.problems))


class Strict(BaseModel):
    """Unknown keys are errors, models are immutable, and floats must be finite: ``.inf`` and ``.nan``
    pass ``gt``/``ge`` bounds (inf > 0) but no learning rate, weight or fraction is meant to be one."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _power_of_two(value: int) -> int:
    if value & (value - 1):
        raise ValueError("must be a power of two (8, 16, 32 or 64)")
    return value


def stratified_train_size(n: int, test_fraction: float) -> int:
    """Train images of scikit-learn's ``train_test_split(test_size=test_fraction)`` of ``n``: the test
    split takes ceil(test_fraction * n)."""
    return n - math.ceil(test_fraction * n)
