"""Search-space strings of ``params.yaml`` ``tune:`` entries, parsed without importing Ray.

A dimension is written as a call: ``loguniform(1e-5, 1e-2)``, ``uniform(0.0, 0.9)``,
``randint(1, 4)`` (both ends included) or ``choice(32, 64)`` / ``choice(minimax, nonsaturating)``
(values read as YAML scalars). :mod:`pipeline.tune` turns a :class:`Dimension` into a Ray Tune
domain; this module only checks the text, so ``params.yaml`` errors appear before Ray starts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import yaml

KINDS = ("loguniform", "uniform", "randint", "choice")
_CALL = re.compile(r"^\s*([a-z]+)\s*\((.*)\)\s*$", re.DOTALL)


@dataclass(frozen=True)
class Dimension:
    """One searched key: ``kind`` and its arguments (bounds, or the choices)."""

    kind: str
    args: tuple[Any, ...]

    def candidates(self) -> list[Any]:
        """Values that bound what the search can produce (the ends, or every choice): each must be a
        valid value of the key, which is how the config check catches a space that leaves the schema."""
        return list(self.args)

    def clip(self, value: Any) -> Any:
        """``value`` moved into the dimension (PBT perturbs by x1.2 / x0.8 and can step outside)."""
        if self.kind == "choice":
            return value
        low, high = self.args
        clipped = min(max(value, low), high)
        return int(round(clipped)) if self.kind == "randint" else float(clipped)

    def __str__(self) -> str:
        return f"{self.kind}({', '.join(str(a) for a in self.args)})"


def _scalar(text: str) -> Any:
    """A number (``1e-4`` too, which YAML 1.1 reads as a string) or else a YAML scalar."""
    for number in (int, float):
        try:
            return number(text.strip())
        except ValueError:
            pass
    return yaml.safe_load(text)


def parse_dimension(text: Any) -> Dimension:
    """Parse one dimension; raises ValueError with what is allowed."""
    match = _CALL.match(text) if isinstance(text, str) else None
    if not match or match.group(1) not in KINDS:
        raise ValueError(f"not a search dimension; allowed: {', '.join(k + '(...)' for k in KINDS)}")
    kind, body = match.group(1), match.group(2)
    args = tuple(_scalar(part) for part in body.split(",")) if body.strip() else ()
    if kind == "choice":
        if len(args) < 2 or len(set(map(repr, args))) != len(args):
            raise ValueError("choice(...) needs at least two distinct values")
        return Dimension(kind, args)
    if len(args) != 2 or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
        raise ValueError(f"{kind}(low, high) takes two numbers")
    low, high = args
    if not low < high:
        raise ValueError(f"{kind}(low, high) needs low < high")
    if kind == "loguniform" and low <= 0:
        raise ValueError("loguniform(low, high) needs 0 < low")
    if kind == "randint" and not all(isinstance(a, int) for a in args):
        raise ValueError("randint(low, high) takes two integers")
    if not all(math.isfinite(a) for a in args):
        raise ValueError(f"{kind}(low, high) needs finite bounds")
    return Dimension(kind, (low, high) if kind == "randint" else (float(low), float(high)))
