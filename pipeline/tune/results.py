"""A finished tuning job as files: ``trials.csv`` (one row per trial) and ``best.json``.

A trial is ranked by its *last* reported objective, the quality of the model it ends with (ASHA
compares trials the same way at each rung); its best-ever value is kept beside it. A trial that
diverged (its last report flagged ``diverged``, with the worst objective so that ASHA stopped it) has
status ``diverged`` and is never the best, whatever it reported before. No Ray here: the search
hands over plain records ``{trial_id, config, reports, error, starts}``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.artifacts import atomic_path, write_json


def trial_rows(records: list[dict[str, Any]], keys: list[str], default: dict[str, Any] | None,
               mode: str, max_epochs: int) -> list[dict[str, Any]]:
    """One row per trial: its searched values, status, epochs run, last and best objective."""
    rows = []
    for record in sorted(records, key=lambda r: r["trial_id"]):
        diverged = any(r.get("diverged") == 1 for r in record["reports"])  # (NaN where another report had it)
        reports = [r for r in record["reports"] if _finite(r.get("objective")) and r.get("diverged") != 1]
        last = reports[-1] if reports else {}
        values = [r["objective"] for r in reports]
        best_at = (min if mode == "min" else max)(range(len(values)), key=values.__getitem__) if values else None
        epochs = int(max((r.get("epoch", 0) for r in record["reports"]), default=0))
        status = ("error" if record["error"] else "diverged" if diverged else
                  "completed" if epochs >= max_epochs else "stopped_early")
        rows.append({
            "trial_id": record["trial_id"], "status": status,
            # The default config is the search's first point (trial index 0); PBT may since have changed it.
            "is_default": default is not None and record["trial_id"].endswith("_00000"),
            **{k: record["config"].get(k) for k in keys},
            "epochs": epochs, "objective": last.get("objective"), "objective_std": last.get("objective/std"),
            "best_objective": values[best_at] if values else None,
            "best_epoch": int(reports[best_at]["epoch"]) if values else None,
            "launches": record.get("starts", 1), "error": (record["error"] or "")[:200]})
    return rows


def best_summary(rows: list[dict[str, Any]], keys: list[str], mode: str) -> dict[str, Any]:
    """The best trial (by last objective) and the default trial, with their configs and spread."""
    ranked = [r for r in rows if r["status"] not in ("error", "diverged") and _finite(r["objective"])]
    if not ranked:
        statuses = ", ".join(f"{r['trial_id']}: {r['status']} {r['error']}".strip() for r in rows)
        raise RuntimeError(f"no trial reported a finite objective without diverging ({statuses})")
    best = (min if mode == "min" else max)(ranked, key=lambda r: r["objective"])
    default = next((r for r in rows if r["is_default"]), None)
    return {"best": _summary(best, keys), "default": _summary(default, keys) if default else None}


def _summary(row: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    return {"trial_id": row["trial_id"], "config": {k: row[k] for k in keys}, "objective": row["objective"],
            "objective_std": row["objective_std"], "epochs": row["epochs"], "status": row["status"],
            "best_objective": row["best_objective"], "best_epoch": row["best_epoch"]}


def write_outputs(out_dir: Path, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """``trials.csv`` and ``best.json`` in ``out_dir``, each written atomically (the caller swaps
    ``out_dir`` in whole)."""
    with atomic_path(out_dir / "trials.csv") as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    write_json(out_dir / "best.json", summary, default=_plain)


def read_exploits(experiment_dir: Path) -> list[dict[str, Any]]:
    """PBT's exploit log (``pbt_global.txt``: one JSON list per exploit) as records."""
    path = experiment_dir / "pbt_global.txt"
    if not path.is_file():
        return []
    events = []
    for line in path.read_text().splitlines():
        target, clone, target_iter, clone_iter, _, new_config = json.loads(line)
        events.append({"trial": target, "cloned": clone, "at_iteration": target_iter,
                       "clone_iteration": clone_iter, "new_config": new_config})
    return events


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _plain(value: Any) -> Any:
    """numpy scalars -> Python numbers for JSON."""
    return value.item() if hasattr(value, "item") else str(value)
