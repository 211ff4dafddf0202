"""A family owns its behaviour: the family and schema registries agree, every family builds on the
base class, and no module outside families/, models/ and the schema registry names a family."""

from __future__ import annotations

import re

from helpers import ROOT
from pipeline.families import FAMILIES
from pipeline.families.base import Family
from pipeline.schemas import VARIANT_SCHEMAS

# Where a family may be named: its module and model, and the two registries (schemas.py's dict and
# Literals, families/__init__.py).
ALLOWED = ("pipeline/families/", "pipeline/models/", "pipeline/schemas.py")


def test_the_family_and_schema_registries_name_the_same_families():
    assert sorted(FAMILIES) == sorted(VARIANT_SCHEMAS)  # the families register themselves (discovery)
    assert all(issubclass(cls, Family) for cls in FAMILIES.values())


def test_no_module_outside_the_families_names_a_family():
    names = "|".join(map(re.escape, FAMILIES))
    # A quoted family name anywhere, or the longer names (not English words) anywhere in lower case.
    pattern = re.compile(rf"[\"']({names})[\"']|{'|'.join(n for n in FAMILIES if len(n) > 5)}")
    hits = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
            for path in sorted((ROOT / "pipeline").rglob("*.py"))
            if not str(path.relative_to(ROOT)).startswith(ALLOWED)
            for number, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, "family names outside the families (use a Family hook or a config class attribute):\n" + \
        "\n".join(hits)
