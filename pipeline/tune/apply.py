"""``python -m pipeline tune-apply VARIANT``: write a tuning job's best config into ``params.yaml``.

The file is edited as a round trip (ruamel.yaml, which DVC itself uses), so comments and key order
survive; each changed key gets a trailing comment with the value it replaced. The edited params are
validated before anything is written, and the file is replaced atomically.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from pipeline.artifacts import atomic_write_text
from pipeline.config import ConfigError, parse_params


def apply_best(params_path: Path, variant: str, best_json: Path) -> dict[str, tuple[Any, Any]]:
    """Set ``variants.<variant>.<key>`` to the best trial's value for every searched key; returns
    ``{key: (old, new)}``. Raises ConfigError (nothing written) if the result would be invalid."""
    if not best_json.is_file():
        raise ConfigError([f"{best_json}: no tuning result; run `dvc repro tune@{variant}` first"])
    best = json.loads(best_json.read_text())
    if best.get("variant") != variant:
        raise ConfigError([f"{best_json}: holds the tuning of {best.get('variant')!r}, not {variant!r}"])
    yaml = YAML()  # round-trip mode
    yaml.preserve_quotes = True
    yaml.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    tree = yaml.load(params_path.read_text())
    entry = (tree.get("variants") or {}).get(variant)
    if entry is None:
        raise ConfigError([f"{params_path}: variants.{variant}: not declared"])
    changes = {}
    for key, value in best["best"]["config"].items():
        value = _round(value)
        old = entry.get(key)
        if old != value:
            entry[key] = value
            entry.yaml_add_eol_comment(f"tuned (tune/{variant}/best.json, trial {best['best']['trial_id']}); "
                                       f"was {old}", key)
            changes[key] = (old, value)
    buffer = io.StringIO()
    yaml.dump(tree, buffer)
    parse_params(YAML(typ="safe").load(buffer.getvalue()))  # invalid -> ConfigError, nothing written
    atomic_write_text(params_path, buffer.getvalue())
    return changes


def _round(value: Any) -> Any:
    """Floats to 4 significant digits: a tuned lr of 0.000613 reads better than 0.0006128796514."""
    return float(f"{value:.4g}") if isinstance(value, float) else value
