"""The evaluation registry: every evaluator kind the evaluator stage writes has one entry, which
gives its summary and (where tunable) its objective; unknown and untunable kinds are refused."""

import json
import re
from pathlib import Path

import pytest

from pipeline.evaluation import EVALUATION_KINDS, evaluation_for
from pipeline.objective import objective_of

ROOT = Path(__file__).resolve().parents[2]


def evaluator_dir(path: Path, meta: dict) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "meta.json").write_text(json.dumps(meta))
    return path


def test_every_kind_the_evaluator_stage_writes_is_registered():
    written = set(re.findall(r'"kind": "(\w+)"', (ROOT / "pipeline" / "evaluator.py").read_text()))
    assert written == set(EVALUATION_KINDS) == {"classifier", "channel_classifier", "modes", "translation"}


def test_summaries_and_objectives_per_kind(tmp_path):
    modes = evaluator_dir(tmp_path, {"kind": "modes", "modes": [[0, 1]] * 8, "mode_std": 0.01})
    assert evaluation_for(modes).summary(json.loads((modes / "meta.json").read_text())) == {"modes": 8}
    assert objective_of(modes) == ("modes_x_quality", "max")
    assert EVALUATION_KINDS["translation"].summary({"test_accuracy": {"A": 0.9, "B": 0.8}}) == {
        "test_accuracy_a": 0.9, "test_accuracy_b": 0.8}
    assert EVALUATION_KINDS["classifier"].summary({"test_accuracy": 0.97}) == {"test_accuracy": 0.97}
    assert EVALUATION_KINDS["classifier"].objective == ("kid", "min")
    assert EVALUATION_KINDS["translation"].objective == ("label_preservation", "max")


def test_untunable_and_unknown_kinds_are_refused_with_the_allowed_ones(tmp_path):
    stacked = evaluator_dir(tmp_path / "stacked", {"kind": "channel_classifier"})
    with pytest.raises(ValueError, match=r"kind 'channel_classifier' has no tuning objective; allowed: "
                                         r"classifier, modes, translation"):
        objective_of(stacked)
    odd = evaluator_dir(tmp_path / "odd", {"kind": "histogram"})
    with pytest.raises(ValueError, match=r"unknown evaluator kind 'histogram'; allowed: classifier, "):
        evaluation_for(odd)
