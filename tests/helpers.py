"""Small shared builders for tests (importable as `helpers`; tests/ is on sys.path)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tiny_variant(**overrides) -> dict:
    """A DCGAN variant small enough to train in seconds."""
    base = {"family": "dcgan", "dataset": "digits", "epochs": 2, "batch_size": 64, "z_dim": 16,
            "g_width": 16, "d_width": 16, "augment": ["translation", "cutout"], "ema_decay": 0.9}
    base.update(overrides)
    return base


def tiny_params(**variant_overrides) -> dict:
    return {"datasets": {"digits": {"kind": "digits", "image_size": 16}},
            "evaluators": {"digits": {"epochs": 3}},
            "variants": {"dcgan": tiny_variant(**variant_overrides)}}


def tiny_points_params() -> dict:
    """tiny_params plus a small ring8 and an MLP GAN on it."""
    params = tiny_params()
    params["datasets"]["ring8"] = {"kind": "ring8", "n_train": 2000, "n_test": 500}
    params["evaluators"]["ring8"] = {}
    params["variants"]["gan_ns"] = {"family": "gan", "dataset": "ring8", "epochs": 2, "batch_size": 100,
                                    "g_hidden": 32, "d_hidden": 32, "lr_g": 1e-3, "lr_d": 1e-3}
    return params


def stylegan_params(**overrides) -> dict:
    """tiny_params with a small StyleGAN (variant ``stylegan``) whose growth crosses every phase in 3 epochs."""
    params = tiny_params()
    # 44 steps x 32 = 1,408 images per epoch: 4x4 for 600 images, 8x8 fading in until 2,000 and
    # full until 2,600, then 16x16 fading in until 4,000: epoch 2's last step (images 2,784 on)
    # is inside that fade.
    params["variants"] = {"stylegan": {"family": "stylegan", "dataset": "digits", "epochs": 3, "batch_size": 32,
                                       "z_dim": 8, "w_dim": 16, "mapping_layers": 2, "g_width": 8, "d_width": 8,
                                       "phase_images": 600, "fade_images": 1400, **overrides}}
    return params


def restore_latest(family, nets, session) -> None:
    """Load a LocalSession's latest checkpoint into ``nets``: the trained weights, as the driver
    restores them after training (pipeline/train/driver.py)."""
    from pipeline.train.checkpoint import load_checkpoint, restore

    state, _, _ = load_checkpoint(session.latest_checkpoint())
    restore(nets, family.optimizers(nets), state)


def run_train_stage(tmp_path: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """``stages/train.py --variant dcgan`` on ``tmp_path/params.yaml``, its outputs under ``tmp_path``
    (models/dcgan, p.csv, ray/), as DVC runs it; the data file does not exist."""
    return subprocess.run(
        [sys.executable, str(ROOT / "stages" / "train.py"), "--variant", "dcgan", "--params", "params.yaml",
         "--data", "missing.npz", "--out", str(tmp_path / "models" / "dcgan"), "--plots", str(tmp_path / "p.csv"),
         "--storage", str(tmp_path / "ray")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)


def copy_tracked_files(target: Path) -> Path:
    """The repository's tracked files copied into ``target``, as a fresh clone has them, without
    the full-size run's outputs (dvc.lock, metrics/, plots/)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    for generated in ("dvc.lock", "metrics", "plots"):
        path = target / generated
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    return target


def wait_until_ray_is_idle(ray, timeout_s: float = 120.0) -> None:
    """Block until every CPU of the test Ray is free again: a finished Train run gives its placement
    group back asynchronously, and a streamed run started meanwhile would find no CPU for its Ray Data
    reads (they wait, not fail). Fails with what still holds CPUs after ``timeout_s``."""
    import time

    deadline = time.monotonic() + timeout_s
    while ray.available_resources().get("CPU", 0.0) < ray.cluster_resources()["CPU"]:
        if time.monotonic() > deadline:
            from ray.util.state import list_actors, list_placement_groups

            alive = [(a.class_name, a.pid) for a in list_actors(filters=[("state", "=", "ALIVE")])]
            groups = [(g.placement_group_id, g.state) for g in list_placement_groups()]
            raise AssertionError(f"Ray still holds CPUs after {timeout_s:g} s: free {ray.available_resources()}, "
                                 f"alive actors {alive}, placement groups {groups}")
        time.sleep(0.5)
