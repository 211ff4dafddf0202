"""Profiles: small overlays on ``params.yaml`` that hold only what they change.

A profile file (``profiles/<name>.yaml``) looks like::

    base: ../params.yaml          # the params it changes, relative to this file
    drop: [variants.cgan, tune.dcgan]   # entries it leaves out (dotted keys)
    set:                          # values it adds or replaces (merged key by key)
      variants:
        dcgan: {epochs: 5000, batch_size: 512}

:func:`resolve` turns it into a whole params dict (what ``load_params`` validates), and
:func:`dvc_overrides` into ``dvc exp run -S`` overrides (Hydra's grammar: ``++key=value`` adds or
replaces, ``~key`` removes). ``make run PROFILE=<name>`` runs those as a DVC experiment in a
temporary copy of the workspace, so the tracked ``params.yaml`` is never rewritten and the
experiment (its params, metrics and outputs) is recorded by DVC against the commit it ran on.

A profile's ``base`` may be another profile (``base: digits.yaml``): the chain is resolved from
``params.yaml`` up, and its overrides are the base profile's followed by its own.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

OVERLAY_KEYS = {"base", "drop", "set"}
MAX_CHAIN = 8  # profiles on profiles: deeper than this is taken for a cycle


class ProfileError(ValueError):
    """A malformed profile (one line naming the file and the key)."""


def is_overlay(raw: Any) -> bool:
    """A params document is a profile overlay if it names its ``base``."""
    return isinstance(raw, dict) and "base" in raw


def resolve(raw: dict[str, Any], where: Path, depth: int = 0) -> dict[str, Any]:
    """The whole params an overlay stands for: its base, minus ``drop``, merged with ``set``.

    ``where`` is the overlay file (``base`` is relative to its folder); a base that is itself an
    overlay is resolved first.
    """
    base_path, base_raw = _base(raw, where, depth)
    params = resolve(base_raw, base_path, depth + 1) if is_overlay(base_raw) else base_raw
    for key in _drops(raw, where):
        parent, _, leaf = key.rpartition(".")
        node = _lookup(params, parent, where) if parent else params
        if not isinstance(node, dict) or leaf not in node:
            raise ProfileError(f"{where}: drop {key!r}: no such key in {raw['base']}")
        del node[leaf]
    return _merge(params, raw.get("set") or {})


def dvc_overrides(raw: dict[str, Any], where: Path, depth: int = 0) -> list[str]:
    """``dvc exp run -S`` arguments that turn params.yaml into the profile's params (a base
    profile's overrides first, then this overlay's: Hydra applies them in order)."""
    base_path, base_raw = _base(raw, where, depth)
    inherited = dvc_overrides(base_raw, base_path, depth + 1) if is_overlay(base_raw) else []
    flat: list[tuple[str, Any]] = []
    _flatten(raw.get("set") or {}, "", flat)
    return inherited + [f"~{key}" for key in _drops(raw, where)] + [
        f"++{key}={hydra_value(value)}" for key, value in flat]


def _base(raw: dict[str, Any], where: Path, depth: int) -> tuple[Path, Any]:
    """The overlay's base file and its parsed content (ProfileError naming the file if wrong)."""
    unknown = sorted(set(raw) - OVERLAY_KEYS)
    if unknown:
        raise ProfileError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: base, drop, set")
    if depth >= MAX_CHAIN:
        raise ProfileError(f"{where}: profiles based on profiles more than {MAX_CHAIN} deep (a cycle?)")
    base_path = where.parent / str(raw["base"])
    if not base_path.is_file():
        raise ProfileError(f"{where}: base {raw['base']!r} not found (relative to {where.parent})")
    return base_path, yaml.safe_load(base_path.read_text())


def hydra_value(value: Any) -> str:
    """A value in Hydra's override grammar: strings quoted (so ``loguniform(1e-4, 3e-3)`` is not read
    as a function call), lists and mappings in flow style."""
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {hydra_value(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _drops(raw: dict[str, Any], where: Path) -> list[str]:
    drops = raw.get("drop") or []
    if not isinstance(drops, list) or not all(isinstance(d, str) and d for d in drops):
        raise ProfileError(f"{where}: drop must be a list of dotted keys, e.g. [variants.cgan]")
    return drops


def _lookup(params: dict[str, Any], dotted: str, where: Path) -> Any:
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ProfileError(f"{where}: drop: no key {dotted!r} in the base params")
        node = node[part]
    return node


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` merged key by key (mappings recursively, anything else replaced)."""
    merged = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _flatten(node: dict[str, Any], prefix: str, out: list[tuple[str, Any]]) -> None:
    """Leaves of nested mappings as (dotted key, value); lists and empty mappings stay whole."""
    for key, value in node.items():
        if isinstance(value, dict) and value:
            _flatten(value, f"{prefix}{key}.", out)
        else:
            out.append((f"{prefix}{key}", value))


def profile_path(name: str, root: Path) -> Path:
    """``profiles/<name>.yaml``; ProfileError naming the allowed names if there is none."""
    path = root / "profiles" / f"{name}.yaml"
    if not path.is_file():
        allowed = ", ".join(sorted(p.stem for p in (root / "profiles").glob("*.yaml")))
        raise ProfileError(f"PROFILE={name}: no profiles/{name}.yaml; allowed: {allowed}")
    return path


def experiment_command(name: str, root: Path, stamp: str) -> list[str]:
    """``dvc exp run --temp`` of a profile: the base params with the overlay's overrides, run in a
    temporary copy of the workspace and recorded as the DVC experiment ``<name>-<stamp>``."""
    path = profile_path(name, root)
    raw = yaml.safe_load(path.read_text())
    if not is_overlay(raw):
        raise ProfileError(f"{path}: not an overlay (it must name its base: base: ../params.yaml)")
    args = ["dvc", "exp", "run", "--temp", "--name", f"{name}-{stamp}"]
    for override in dvc_overrides(raw, path):
        args += ["-S", override]
    return args
