"""`dvc repro` of a tiny params profile in a temporary copy of the repository (real DVC, Ray, MLflow)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

from depcheck import check_all, module_file
from helpers import ROOT, copy_tracked_files, tiny_points_params

pytestmark = pytest.mark.integration


# The stages join the test session's Ray through RAY_ADDRESS, as they would join a cluster (set by
# the `repo_copy` fixture), instead of each starting and stopping an embedded Ray.
SHARED_RAY: dict[str, str] = {}


def run(cmd: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "true", **SHARED_RAY}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory, ray_cluster) -> Path:
    """The repository's tracked files (as a fresh clone has them) with tiny params, committed."""
    SHARED_RAY["RAY_ADDRESS"] = ray_cluster.get_runtime_context().gcs_address
    SHARED_RAY["GAN_LAB_STORAGE_SHARED"] = "1"  # a one-machine "cluster": its local storage is shared
    target = copy_tracked_files(tmp_path_factory.mktemp("repo"))
    params = tiny_points_params()
    params["variants"]["dcgan"].update(epochs=1, eval={"kid_subsets": 5})
    # Seeds, packing and stacked digits go through the same stages.
    params["datasets"]["stacked_digits"] = {"kind": "stacked_digits", "n_train": 256, "n_test": 300}
    params["evaluators"]["stacked_digits"] = {"epochs": 10}
    params["variants"]["pacdcgan_stacked"] = {"family": "dcgan", "dataset": "stacked_digits", "epochs": 1,
                                              "batch_size": 64, "z_dim": 16, "g_width": 16, "d_width": 16,
                                              "pack": 2, "seeds": [0, 1]}
    params["variants"]["cgan"] = {**params["variants"]["dcgan"], "conditional": True}
    # (Each variant here costs a Ray Train start-up, ~25 s. The VAE's and CycleGAN's stages are left
    # out: the VAE's loop, saved-model evaluation and report section are tested in test_vae.py and
    # test_report.py; CycleGAN's training on Ray in test_ray_train.py, the rest in test_cyclegan.py.)
    # tune@gan_ns: two ASHA trials of one epoch (each a Ray Train run), tracked in MLflow.
    params["tune"] = {"gan_ns": {"num_samples": 2, "max_epochs": 1, "grace_epochs": 1, "n_samples": 500,
                                 "space": {"lr_g": "loguniform(1e-4, 1e-2)"}}}
    (target / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    run(["git", "init", "-q"], target)
    run(git + ["add", "-A"], target)
    run(git + ["commit", "-qm", "tiny profile"], target)
    return target


@pytest.fixture(scope="module")
def import_log(tmp_path_factory) -> Path:
    """Where the stages' processes record the repository modules they load (tests/importlog)."""
    return tmp_path_factory.mktemp("imports")


@pytest.fixture(scope="module")
def reproduced(repo_copy, import_log) -> Path:
    """The tiny profile after one `dvc repro`, every process's repository imports recorded."""
    SHARED_RAY["GAN_LAB_IMPORT_LOG"] = str(import_log)
    try:
        run(["dvc", "repro"], repo_copy)
    finally:
        SHARED_RAY.pop("GAN_LAB_IMPORT_LOG")
    return repo_copy


def stage_imports(log_dir: Path) -> dict[str, tuple[set[str], int]]:
    """Per stage script (``stages/<x>.py``, as dvc.yaml's cmd runs it): the repository files that
    its process and its Ray workers loaded, and how many processes recorded any."""
    found: dict[str, tuple[set[str], int]] = {}
    for driver in log_dir.iterdir():
        records = {p: p.read_text().splitlines() for p in driver.glob("*.txt")}
        own = driver / f"{driver.name}.txt"
        assert own in records, f"Ray workers recorded imports for driver {driver.name}, which recorded none"
        script = json.loads(records[own][0])[0]
        files = {str(f.relative_to(ROOT)) for lines in records.values() for name in lines[1:]
                 if (f := module_file(name))}
        seen, processes = found.get(script, (set(), 0))
        found[script] = (seen | files, processes + len(records))
    return found


@pytest.fixture
def workspace_copy(reproduced, tmp_path) -> Path:
    """A private copy of the reproduced repository (git, DVC cache, MLflow store and outputs), for a
    test that changes params, outputs, commits or remotes: the shared `reproduced` tree stays as the
    one `dvc repro` left it, whatever order the tests run in. (Metrics are `cache: false`, so a
    `dvc checkout` could not restore them.)"""
    target = tmp_path / "workspace"
    shutil.copytree(reproduced, target, symlinks=True)
    return target


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_dcgan_metrics_and_environment_files(reproduced):
    """train/evaluate@dcgan wrote finite image metrics, and the environment beside (not inside) them."""
    metrics = read_json(reproduced / "metrics" / "dcgan.json")
    for key in ("fid", "fid_floor", "fid_over_floor", "kid_mean", "kid_std", "kid_floor_mean",
                "fid_untrained", "evaluator_accuracy"):
        assert np.isfinite(metrics[key]), key
    assert metrics["n_samples"] == 360 and metrics["fid_floor"] < metrics["fid"]
    # The environment beside the numbers (run.json holds rank 0's, the MLflow run both).
    environment = read_json(reproduced / "metrics" / "dcgan.env.json")
    assert environment["cpu"]["capability"] and environment["libraries"]["dvc"] and "environment" not in metrics
    assert read_json(reproduced / "metrics" / "evaluator_digits.env.json")["python"]
    assert read_json(reproduced / "models" / "dcgan" / "run.json")["environment"]["device"] == "cpu"


def test_models_samples_and_training_plots(reproduced):
    """Every variant left its model, sample grid and per-step training CSV (one model per seed)."""
    assert (reproduced / "samples" / "dcgan.png").stat().st_size > 0
    assert (reproduced / "samples" / "gan_ns.png").stat().st_size > 0
    rows = (reproduced / "plots" / "train" / "dcgan.csv").read_text().splitlines()
    assert rows[0].startswith("step,epoch,loss/D") and len(rows) == 1 + 1437 // 64  # epochs: 1
    assert sorted(p.name for p in (reproduced / "models" / "pacdcgan_stacked").iterdir()) == ["seed-0", "seed-1"]
    assert any((reproduced / "models" / "dcgan").iterdir()) and any((reproduced / "models" / "cgan").iterdir())


def test_stacked_cgan_and_points_metrics(reproduced):
    """The other evaluators' metrics: stacked-digit modes over two seeds, class metrics, ring8 modes."""
    stacked = read_json(reproduced / "metrics" / "pacdcgan_stacked.json")
    assert stacked["seeds"] == [0, 1] and set(stacked["per_seed"]) == {"0", "1"}
    assert stacked["modes_floor"] > 150 and 1 <= stacked["modes"] <= 300 and stacked["n_samples"] == 300
    assert stacked["std"]["modes"] >= 0 and np.isfinite(stacked["kl"])
    cgan = read_json(reproduced / "metrics" / "cgan.json")
    assert 0 <= cgan["label_accuracy"] <= 1 and cgan["intra_fid"] > 0 and 0 <= cgan["cas"] <= cgan["cas_real"] + 0.5
    points = read_json(reproduced / "metrics" / "gan_ns.json")
    assert points["modes_floor"] == 8 and 0 <= points["modes"] <= 8 and points["n_samples"] == 500


def test_report_has_the_conditional_and_tune_sections_with_inline_images(reproduced):
    """The report stage's HTML has the sections of this profile's variants and its figures inline."""
    report = (reproduced / "reports" / "index.html").read_text()
    assert "Conditional variants" in report and "data:image/png;base64," in report
    assert "Hyperparameter search (Ray Tune)" in report
    assert (reproduced / "reports" / "summary.md").is_file()


def test_tune_writes_best_json_with_the_default_beside_the_best(reproduced):
    """tune@gan_ns ran both trials and kept the params.yaml config as the default to compare with."""
    tuned = read_json(reproduced / "tune" / "gan_ns" / "best.json")
    assert tuned["n_trials"] == 2 and tuned["default"]["config"] == {"lr_g": 0.001}
    assert 0 <= tuned["best"]["objective"] <= 1


def test_mlflow_has_the_training_run_with_its_metrics_and_a_report_run(reproduced):
    """run.json's MLflow run is train@dcgan's and holds the metric evaluate wrote; the report stage
    logged its own run with the report as artifacts."""
    metrics = read_json(reproduced / "metrics" / "dcgan.json")
    run_id = read_json(reproduced / "models" / "dcgan" / "run.json")["run_id"]
    client = MlflowClient(f"sqlite:///{reproduced}/mlflow.db")
    mlflow_run = client.get_run(run_id)
    assert mlflow_run.data.metrics["metric/fid"] == pytest.approx(metrics["fid"])
    assert mlflow_run.data.tags["dvc_stage"] == "train@dcgan"
    report_runs = client.search_runs([mlflow_run.info.experiment_id], "tags.dvc_stage = 'report'")
    assert report_runs and {a.path for a in client.list_artifacts(report_runs[0].info.run_id, "report")} >= {
        "report/index.html", "report/summary.md"}


def test_a_second_repro_is_a_no_op_and_metrics_and_plots_show_work(reproduced):
    """Nothing changed since the module's `dvc repro`: every stage is skipped, in seconds."""
    started = time.monotonic()
    again = run(["dvc", "repro"], reproduced)
    assert "didn't change, skipping" in again.stdout and "Running stage" not in again.stdout
    assert time.monotonic() - started < 30
    assert "fid" in run(["dvc", "metrics", "show"], reproduced).stdout
    run(["dvc", "plots", "show", "-o", "plots_html"], reproduced)
    assert (reproduced / "plots_html" / "index.html").is_file()


def test_sample_command_writes_points_and_png(reproduced):
    repo_copy = reproduced
    run([sys.executable, "-m", "pipeline", "sample", "dcgan", "-n", "10", "--out", "s.npz", "--png", "s.png"],
        repo_copy)
    with np.load(repo_copy / "s.npz") as data:
        assert data["images"].shape == (10, 1, 16, 16)
        assert data["images"].min() >= -1 and data["images"].max() <= 1
    assert (repo_copy / "s.png").is_file()
    run([sys.executable, "-m", "pipeline", "sample", "cgan", "--label", "7", "-n", "5", "--out", "sevens.npz"], repo_copy)
    with np.load(repo_copy / "sevens.npz") as data:
        assert data["images"].shape == (5, 1, 16, 16) and data["labels"].tolist() == [7] * 5
    refused = subprocess.run([sys.executable, "-m", "pipeline", "sample", "dcgan", "--label", "7", "--out", "x.npz"],
                             cwd=repo_copy, capture_output=True, text=True)
    assert refused.returncode == 2 and "dcgan is not conditional" in refused.stderr


def test_tune_apply_writes_the_best_config_into_params(reproduced):
    repo_copy = reproduced
    shutil.copy(repo_copy / "params.yaml", repo_copy / "applied.yaml")
    best = json.loads((repo_copy / "tune" / "gan_ns" / "best.json").read_text())["best"]["config"]["lr_g"]
    out = run([sys.executable, "-m", "pipeline", "tune-apply", "gan_ns", "--params", "applied.yaml"], repo_copy)
    assert "value(s) of gan_ns set from tune/gan_ns/best.json" in out.stdout
    applied = yaml.safe_load((repo_copy / "applied.yaml").read_text())
    assert applied["variants"]["gan_ns"]["lr_g"] == pytest.approx(best, rel=1e-3)


def test_dvc_exp_run_with_a_changed_param_retrains(workspace_copy):
    """`dvc exp run -S` changes a param and retrains (on a copy: it rewrites params.yaml and outputs)."""
    repo_copy = workspace_copy
    run(["dvc", "exp", "run", "-S", "variants.dcgan.epochs=2"], repo_copy)
    rows = (repo_copy / "plots" / "train" / "dcgan.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * (1437 // 64)


def test_every_module_a_stage_loaded_is_in_its_dvc_deps(reproduced, import_log):
    """What the stages really loaded (lazy imports and Ray workers included) is inside the import
    closure that tests/depcheck.py checks dvc.yaml's deps against, and so covered by those deps."""
    loaded = stage_imports(import_log)
    checks = {c.script: c for c in check_all()}
    assert set(loaded) == set(checks), f"stage scripts that ran: {sorted(loaded)}"
    for script, (files, processes) in loaded.items():
        check = checks[script]
        escaped = sorted(files - check.closure)
        assert not escaped, f"{check.stage}: loaded {escaped}, outside its import closure (dynamic import?)"
        assert check.ok, f"{check.stage}: deps do not cover its import closure: {check.missing}"
    # The Ray workers were recorded too: train's workers ran the Ray Train session adapter.
    train_files, train_processes = loaded["stages/train.py"]
    assert "pipeline/train/ray_session.py" in train_files and train_processes > 1


def test_a_profile_runs_as_a_dvc_experiment_and_leaves_the_tree_clean(workspace_copy):
    """`make run PROFILE=tiny` (python -m pipeline profile tiny): the overlay's values are trained in
    a temporary workspace; params.yaml and the git tree are untouched, DVC records the experiment.
    (On a copy: the test commits an overlay and adds MLflow runs.)"""
    repo = workspace_copy
    overlay = {"base": "../params.yaml", "drop": ["variants.dcgan", "variants.cgan", "variants.pacdcgan_stacked",
                                                  "tune.gan_ns"],
               "set": {"variants": {"gan_ns": {"epochs": 1}}}}
    (repo / "profiles" / "tiny.yaml").write_text(yaml.safe_dump(overlay, sort_keys=False))
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    run(git + ["add", "profiles/tiny.yaml"], repo)
    run(git + ["commit", "-qm", "tiny overlay"], repo)
    params_before = (repo / "params.yaml").read_bytes()
    status_before = run(["git", "status", "--porcelain", "--untracked-files=no"], repo).stdout
    client = MlflowClient(f"sqlite:///{repo}/mlflow.db")
    runs_before = len(client.search_runs(client.get_experiment_by_name("gan-lab").experiment_id,
                                         "tags.variant = 'gan_ns'"))

    out = run([sys.executable, "-m", "pipeline", "profile", "tiny"], repo, timeout=900)

    assert (repo / "params.yaml").read_bytes() == params_before
    assert run(["git", "status", "--porcelain", "--untracked-files=no"], repo).stdout == status_before
    # The profile command's closing line (DVC prints its own `dvc exp apply <exp>` hint too).
    name = next(line.split("dvc exp apply ")[1].split("`")[0] for line in out.stdout.splitlines()
                if line.startswith("profile tiny:"))
    assert name.startswith("tiny-")
    shown = run(["dvc", "exp", "show", "--json"], repo).stdout
    assert name in shown
    assert len(client.search_runs(client.get_experiment_by_name("gan-lab").experiment_id,
                                  "tags.variant = 'gan_ns'")) > runs_before


def test_artifacts_shared_through_a_dvc_remote_reproduce_nothing_in_a_second_clone(workspace_copy, tmp_path):
    """`dvc push` from one clone to a (local-directory) remote, `dvc pull` into a second clone: there
    `dvc repro` has nothing to do and `dvc metrics diff` is empty (docs/reproducibility.md). (From a
    copy: the test adds a remote and commits the outputs.)"""
    repo, remote, second = workspace_copy, tmp_path / "remote", tmp_path / "second"
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    run(["dvc", "remote", "add", "--force", "--default", "shared", str(remote)], repo)
    run(git + ["add", "-A"], repo)  # dvc.lock, metrics, plots, best.json, .dvc/config: what a user commits
    run(git + ["commit", "-qm", "results", "--allow-empty"], repo)
    run(["dvc", "push"], repo)
    assert any(remote.rglob("*")), "dvc push wrote nothing to the remote"

    run(["git", "clone", "-q", str(repo), str(second)], tmp_path)
    run(["dvc", "pull"], second)
    assert (second / "models" / "dcgan" / "generator.pt").is_file() or any((second / "models" / "dcgan").iterdir())
    status = run(["dvc", "status"], second).stdout
    assert "up to date" in status, status
    repro = run(["dvc", "repro"], second).stdout
    assert "Running stage" not in repro, repro
    assert run(["dvc", "metrics", "diff"], second).stdout.strip() == ""
