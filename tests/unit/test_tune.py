"""Tuning without Ray: search-space parsing, the tune config checks, trial tables, PBT's checkpoint
adoption in the loop, and tune-apply's edit of params.yaml."""

from __future__ import annotations

import json

import pytest
import torch

from helpers import tiny_params, tiny_points_params
from pipeline.config import ConfigError, parse_params
from pipeline.search_space import Dimension, parse_dimension
from pipeline.train.checkpoint import restore
from pipeline.tune.apply import apply_best
from pipeline.tune.results import best_summary, trial_rows


@pytest.mark.parametrize("text, kind, args", [
    ("loguniform(1e-5, 1e-2)", "loguniform", (1e-5, 1e-2)),
    ("uniform(0, 0.9)", "uniform", (0.0, 0.9)),
    ("randint(1, 4)", "randint", (1, 4)),
    ("choice(32, 64)", "choice", (32, 64)),
    ("choice(minimax, nonsaturating)", "choice", ("minimax", "nonsaturating")),
])
def test_dimensions_parse(text, kind, args):
    assert parse_dimension(text) == Dimension(kind, args)


@pytest.mark.parametrize("text, message", [
    ("normal(0, 1)", "allowed: loguniform"), ("loguniform(0, 1)", "0 < low"), ("uniform(2, 1)", "low < high"),
    ("randint(1.5, 3)", "two integers"), ("choice(3)", "at least two"), ("choice(3, 3)", "at least two"),
    ("uniform(1)", "two numbers"), (0.1, "not a search dimension"),
])
def test_bad_dimensions_say_what_is_allowed(text, message):
    with pytest.raises(ValueError, match=message):
        parse_dimension(text)


def test_clip_keeps_pbt_perturbations_inside_the_range():
    assert parse_dimension("uniform(0, 0.9)").clip(1.08) == 0.9
    assert parse_dimension("randint(1, 4)").clip(0.6) == 1
    assert parse_dimension("choice(a, b)").clip("b") == "b"


def _params_with_tune(**spec) -> dict:
    raw = tiny_params()
    raw["tune"] = {"dcgan": {"max_epochs": 4, "space": {"lr_g": "loguniform(1e-4, 1e-2)"}, **spec}}
    return raw


def test_a_valid_tune_entry_parses():
    params = parse_params(_params_with_tune(scheduler="asha", grace_epochs=2))
    assert params.tune["dcgan"].space == {"lr_g": "loguniform(1e-4, 1e-2)"}


@pytest.mark.parametrize("spec, expected", [
    ({"space": {}}, "tune.dcgan.space = {}: Dictionary should have at least 1 item"),
    ({"space": {"epochs": "randint(1, 3)"}}, "tune.dcgan.space.epochs: not a tunable key"),
    ({"space": {"lr_gg": "uniform(0, 1)"}}, "tune.dcgan.space.lr_gg: not a tunable key"),
    ({"space": {"lr_g": "uniform(-1, 1)"}}, "tune.dcgan.space.lr_g = 'uniform(-1, 1)': can produce lr_g = -1.0"),
    ({"space": {"beta1": "uniform(0, 1)"}}, "can produce beta1 = 1.0"),
    ({"space": {"loss": "choice(minimax, lsgan)"}}, "can produce loss = 'lsgan'"),
    ({"space": {"lr_g": "loguniform(0, 1)"}}, "tune.dcgan.space.lr_g = 'loguniform(0, 1)': loguniform(low, high) needs 0 < low"),
    ({"grace_epochs": 5}, "tune.dcgan.grace_epochs = 5: at most max_epochs (4)"),
    ({"scheduler": "pbt", "perturbation_epochs": 4}, "perturbation_epochs = 4: must be below max_epochs"),
    ({"scheduler": "pbt", "num_samples": 1, "perturbation_epochs": 1}, "PBT needs a population of at least 2"),
    ({"schedular": "asha"}, "tune.dcgan.schedular: unknown key"),
    ({"num_samples": 0}, "tune.dcgan.num_samples = 0"),
])
def test_bad_tune_entries_are_refused_with_the_key(spec, expected):
    with pytest.raises(ConfigError) as info:
        parse_params(_params_with_tune(**spec))
    assert any(expected in line for line in info.value.problems), info.value.problems


def test_tuning_an_undeclared_variant_is_refused():
    raw = _params_with_tune()
    raw["tune"]["vae"] = raw["tune"].pop("dcgan")
    with pytest.raises(ConfigError, match="tune.vae: no valid variant of that name to tune; allowed: dcgan"):
        parse_params(raw)


def _record(index, lr, epochs, objectives, error=None):
    reports = [{"epoch": e + 1, "objective": v, "objective/std": 0.1} for e, v in enumerate(objectives)]
    return {"trial_id": f"abc_{index:05d}", "config": {"lr_g": lr}, "reports": reports[:epochs], "error": error,
            "starts": 1}


def test_trial_rows_rank_by_the_last_objective_and_find_the_default():
    records = [_record(0, 5e-4, 4, [9, 8, 7, 6]), _record(1, 1e-3, 2, [9, 1]),  # stopped early, lucky once
               _record(2, 2e-3, 4, [8, 6, 4, 5]), _record(3, 9e-3, 1, [30], error="boom")]
    rows = trial_rows(records, ["lr_g"], {"lr_g": 5e-4}, "min", max_epochs=4)
    assert [r["status"] for r in rows] == ["completed", "stopped_early", "completed", "error"]
    assert [r["is_default"] for r in rows] == [True, False, False, False]
    assert rows[2]["best_objective"] == 4 and rows[2]["best_epoch"] == 3 and rows[2]["objective"] == 5
    summary = best_summary(rows, ["lr_g"], "min")
    assert summary["best"]["trial_id"] == "abc_00001" and summary["best"]["objective"] == 1
    assert summary["default"]["objective"] == 6 and summary["default"]["config"] == {"lr_g": 5e-4}
    assert best_summary(rows, ["lr_g"], "max")["best"]["trial_id"] == "abc_00000"  # (the error row never wins)


def test_restoring_with_kept_hyperparameters_takes_moments_but_not_the_lr():
    net = torch.nn.Linear(2, 1)
    donor = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.ones(1, 2)).sum().backward()
    donor.step()
    state = {"nets": {"G": net.state_dict()}, "opts": {"G": donor.state_dict()}}
    mine = torch.optim.Adam(net.parameters(), lr=5e-2, betas=(0.1, 0.2))
    restore({"G": net}, {"G": mine}, state, keep_hyperparameters=True)
    assert mine.param_groups[0]["lr"] == 5e-2 and mine.param_groups[0]["betas"] == (0.1, 0.2)
    assert int(mine.state_dict()["state"][0]["step"]) == 1  # Adam's moments and step came from the donor
    restore({"G": net}, {"G": mine}, state)
    assert mine.param_groups[0]["lr"] == 1e-3


def test_pbt_trial_adopts_a_checkpoint_of_another_config(prepared_ring8, tmp_path):
    import shutil

    from pipeline.train.loop import TrainJob, train_loop
    from pipeline.train.session import LocalSession

    variant = parse_params(tiny_points_params()).variant("gan_ns").model_copy(update={"epochs": 1})
    train_loop(TrainJob("gan_ns", variant.model_dump(mode="json"), str(prepared_ring8)).to_dict(),
               LocalSession(tmp_path / "donor"))
    explored = variant.model_copy(update={"epochs": 2, "lr_g": 3e-3}).model_dump(mode="json")
    shutil.copytree(tmp_path / "donor", tmp_path / "plain")
    shutil.copytree(tmp_path / "donor", tmp_path / "adopting")
    plain, adopting = LocalSession(tmp_path / "plain"), LocalSession(tmp_path / "adopting")
    train_loop(TrainJob("gan_ns", explored, str(prepared_ring8)).to_dict(), plain)
    assert [r["epoch"] for r in plain.reports] == [1, 2]  # another config: a normal run starts fresh
    train_loop(TrainJob("gan_ns", explored, str(prepared_ring8), adopt_checkpoint=True).to_dict(), adopting)
    assert [r["epoch"] for r in adopting.reports] == [2]  # PBT: goes on from the donor's epoch 1


PARAMS_TEXT = """\
datasets:
  digits: {kind: digits, image_size: 16}
evaluators:
  digits: {epochs: 3}
variants:
  dcgan:
    family: dcgan
    dataset: digits
    epochs: 2
    batch_size: 64
    lr_g: 0.0005          # the default
    eval:
      n_samples: null     # the test split size
"""


def _best(tmp_path, config, variant="dcgan"):
    path = tmp_path / "tune" / variant / "best.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"variant": variant, "best": {"trial_id": "t_00003", "config": config}}))
    return path


def test_tune_apply_writes_the_best_values_and_keeps_the_rest_of_the_file(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS_TEXT)
    changes = apply_best(params, "dcgan", _best(tmp_path, {"lr_g": 0.0012345678, "beta1": 0.25}))
    assert changes == {"lr_g": (0.0005, 0.001235), "beta1": (None, 0.25)}
    text = params.read_text()
    assert "lr_g: 0.001235" in text and "beta1: 0.25" in text and "was 0.0005" in text
    assert "n_samples: null     # the test split size" in text  # comments and nulls survive
    cfg = parse_params(__import__("yaml").safe_load(text)).variant("dcgan")
    assert cfg.lr_g == 0.001235 and cfg.beta1 == 0.25


def test_tune_apply_refuses_an_invalid_result_and_leaves_the_file(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS_TEXT)
    with pytest.raises(ConfigError, match="lr_g"):
        apply_best(params, "dcgan", _best(tmp_path, {"lr_g": -1.0}))
    assert params.read_text() == PARAMS_TEXT
    with pytest.raises(ConfigError, match="no tuning result"):
        apply_best(params, "dcgan", tmp_path / "missing.json")


def test_pbt_refuses_keys_that_change_the_networks_shapes(prepared_ring8):
    from pipeline.data import load_prepared
    from pipeline.tune.checks import pbt_shape_problems

    raw = tiny_points_params()
    raw["tune"] = {"gan_ns": {"scheduler": "pbt", "max_epochs": 4, "perturbation_epochs": 1,
                              "space": {"lr_g": "loguniform(1e-4, 1e-2)", "g_hidden": "choice(16, 32)"}}}
    problems = pbt_shape_problems(parse_params(raw), "gan_ns", load_prepared(prepared_ring8).spec)
    assert len(problems) == 1 and "tune.gan_ns.space.g_hidden = 'choice(16, 32)': g_hidden = 16 changes" in problems[0]


def test_a_trials_last_epoch_lost_by_tune_is_taken_from_ray_trains_result(tmp_path):
    """Tune may drop a trial's final report (its end marker overtakes it); the record adds it back."""
    import types

    import pandas as pd

    from pipeline.tune.search import _record
    from pipeline.tune.trials import LAST_REPORT_FILE, STARTS_FILE

    trial_dir = tmp_path / "asha_trial_a0166_00002_2_lr_g=0.001"
    trial_dir.mkdir()
    (trial_dir / STARTS_FILE).write_text("1")
    seen_by_tune = pd.DataFrame([{"epoch": 1, "objective": 300.0, "trial_id": "a0166_00002"}])
    result = types.SimpleNamespace(metrics_dataframe=seen_by_tune, path=str(trial_dir), config={"lr_g": 1e-3},
                                   metrics={"trial_id": "a0166_00002"}, error=None)
    assert [r["epoch"] for r in _record(result)["reports"]] == [1]  # nothing beside the trial: as Tune saw it

    (trial_dir / LAST_REPORT_FILE).write_text(json.dumps({"epoch": 2, "objective": 250.0}))
    record = _record(result)
    assert [r["epoch"] for r in record["reports"]] == [1, 2] and record["starts"] == 1
    row, = trial_rows([record], ["lr_g"], None, "min", max_epochs=2)
    assert row["status"] == "completed" and row["objective"] == 250.0

    (trial_dir / LAST_REPORT_FILE).write_text(json.dumps({"epoch": 1, "objective": 300.0}))
    assert len(_record(result)["reports"]) == 1  # Tune had it: not counted twice
