"""Family registry: ``family`` name in params -> class constructed with the variant's config.

The registry finds the families itself: every module of this package is imported, and each
:class:`Family` subclass that sets ``family_name`` is registered under that name. A new family is
therefore one module here (plus its networks, losses and schema entry), with no line to add in
this file. ``tests/depcheck.py`` knows that this ``__init__`` loads every module of the package, so
each stage that uses a family depends on all of them.
"""

from __future__ import annotations

import importlib
import pkgutil

from pipeline.config import TrainingConfig
from pipeline.families.base import Family, Nets, Optimizers, StepEnv


def _discover() -> dict[str, type[Family]]:
    """Import every module of the package; map each family class's ``family_name`` to the class."""
    found: dict[str, type[Family]] = {}
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for value in vars(module).values():
            if (isinstance(value, type) and issubclass(value, Family) and value.__module__ == module.__name__
                    and value.family_name is not None):
                if value.family_name in found:
                    raise TypeError(f"family {value.family_name!r} is defined twice: {found[value.family_name]} "
                                    f"and {value}")
                found[value.family_name] = value
    return found


FAMILIES: dict[str, type[Family]] = _discover()


def family_for(cfg: TrainingConfig) -> Family:
    """The family object for a validated variant config."""
    return FAMILIES[cfg.family](cfg)


__all__ = ["FAMILIES", "Family", "Nets", "Optimizers", "StepEnv", "family_for"]
