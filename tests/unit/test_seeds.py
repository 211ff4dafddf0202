"""A `seeds` list: config rules, one model directory per seed, mean and spread of the metrics."""

import json

import pytest

from helpers import tiny_points_params
from pipeline.config import ConfigError, parse_params
from pipeline.evaluate import summarize_seeds
from pipeline.artifacts import seed_model_dirs
from pipeline.train.driver import downsample, mean_history, seed_run_name


def seeded(**changes) -> dict:
    raw = tiny_points_params()
    raw["variants"]["gan_ns"].update(changes)
    return raw


def test_seeds_replace_seed_and_name_the_runs():
    cfg = parse_params(seeded(seeds=[2, 5])).variant("gan_ns")
    assert cfg.run_seeds() == [2, 5]
    one = cfg.for_seed(5)
    assert one.seed == 5 and one.seeds is None and one.run_seeds() == [5]
    assert seed_run_name("gan_ns", cfg, 5) == "gan_ns-seed5"
    plain = parse_params(seeded(seed=7)).variant("gan_ns")
    assert plain.run_seeds() == [7] and seed_run_name("gan_ns", plain, 7) == "gan_ns"


@pytest.mark.parametrize("changes, message", [
    ({"seeds": [1, 1]}, "variants.gan_ns.seeds = [1, 1]: seeds must be distinct"),
    ({"seeds": []}, "variants.gan_ns.seeds = []: List should have at least 1 item"),
    ({"seeds": [0, -1]}, "variants.gan_ns.seeds.1 = -1: Input should be greater than or equal to 0"),
    ({"seeds": [0, 1], "seed": 3}, "variants.gan_ns.seed = 3: give either seed or seeds, not both"),
])
def test_bad_seeds_are_refused_with_the_key_path(changes, message):
    with pytest.raises(ConfigError) as err:
        parse_params(seeded(**changes))
    assert message in str(err.value)


def test_summary_is_mean_and_sample_std_over_seeds():
    summary = summarize_seeds({0: {"modes": 8, "reverse_kl": 0.1, "extra": None},
                               1: {"modes": 6, "reverse_kl": 0.3, "extra": None}})
    assert summary["modes"] == 7 and summary["reverse_kl"] == pytest.approx(0.2)
    assert summary["std"]["modes"] == pytest.approx(2 ** 0.5)  # sample std (ddof 1) of 8 and 6
    assert summary["seeds"] == [0, 1] and summary["per_seed"]["1"]["modes"] == 6
    assert "extra" not in summary  # a metric missing in some seed has no mean
    single = {"modes": 8}
    assert summarize_seeds({3: single}) == single


def test_mean_history_averages_each_step():
    a = [{"step": 1, "loss/G": 1.0}, {"step": 2, "loss/G": 3.0}]
    b = [{"step": 1, "loss/G": 2.0}, {"step": 2, "loss/G": 5.0}]
    assert mean_history([a, b]) == [{"step": 1, "loss/G": 1.5}, {"step": 2, "loss/G": 4.0}]
    assert mean_history([a]) == a


def test_seed_model_dirs_finds_one_or_several_runs(tmp_path):
    with pytest.raises(FileNotFoundError, match="no trained generator"):
        seed_model_dirs(tmp_path)
    for seed in (4, 2):
        (tmp_path / f"seed-{seed}").mkdir()
        (tmp_path / f"seed-{seed}" / "generator.pt").write_bytes(b"")
    assert list(seed_model_dirs(tmp_path)) == [2, 4]
    (tmp_path / "generator.pt").write_bytes(b"")
    (tmp_path / "config.json").write_text(json.dumps({"seed": 9}))
    assert seed_model_dirs(tmp_path) == {9: tmp_path}


def test_plot_history_is_downsampled_to_window_means():
    """plots/train CSVs keep at most about PLOT_ROWS rows: each the mean of a window of consecutive
    steps, stamped with the window's last step; a key missing from part of a window averages over
    the rest (DVC's plots page embeds every row, MLflow keeps every step)."""
    history = [{"step": s, "epoch": 1 + (s - 1) // 4, "loss/G": float(s)} for s in range(1, 11)]
    history[1]["grad"] = 3.0
    rows = downsample(history, 4)  # 10 rows -> windows of 3
    assert [r["step"] for r in rows] == [3, 6, 9, 10] and [r["epoch"] for r in rows] == [1, 2, 3, 3]
    assert [r["loss/G"] for r in rows] == [2.0, 5.0, 8.0, 10.0]
    assert rows[0]["grad"] == 3.0 and "grad" not in rows[1]
    assert downsample(history, 10) is history, "a history within the limit is kept as it is"
