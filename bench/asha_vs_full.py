"""ASHA against running every sampled config to the full budget (issue 7).

Both searches draw the same configs (the same search seed and ``num_samples``) and train every trial
with the variant's seed; ``fifo`` runs each trial to ``max_epochs``, ``asha`` stops the weak ones at
its rungs. Prints both best objectives, the trial-epochs each spent, and the wall time, and writes
them to ``--out`` (JSON). The objective is the tuning objective (KID of ``n_samples`` samples for
images, lower is better). Results: docs/tune.md.

    python bench/asha_vs_full.py --variant dcgan --num-samples 16 --max-epochs 60 --grace-epochs 5
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MLFLOW_EXPERIMENT_NAME", "gan-lab-bench")  # keep bench runs apart in `mlflow ui`

import pandas as pd  # noqa: E402

from pipeline.config import load_params  # noqa: E402


def plot_curves(work: Path, variant: str, figure: Path) -> None:
    """The objective of every trial against its epochs, full search beside ASHA (Tune's progress.csv)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, scheduler in zip(axes, ("fifo", "asha")):
        for progress in sorted((work / scheduler / f"tune-{variant}").glob("*/progress.csv")):
            frame = pd.read_csv(progress)
            ax.plot(frame["epoch"], frame["objective"], lw=1)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title({"fifo": "full search: every trial to the end", "asha": "ASHA: weak trials stopped at rungs"}[scheduler])
    axes[0].set_ylabel("objective (KID, lower is better)")
    fig.tight_layout()
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="dcgan")
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--num-samples", type=int, default=16)
    parser.add_argument("--max-epochs", type=int, default=60)
    parser.add_argument("--grace-epochs", type=int, default=5)
    parser.add_argument("--reduction-factor", type=int, default=3)
    parser.add_argument("--space", type=json.loads, default=None,
                        help='JSON {key: dimension}; default: the params tune entry\'s space')
    parser.add_argument("--work", default=str(ROOT / ".ray_runs" / "bench-asha"), help="Tune storage and outputs")
    parser.add_argument("--out", default=str(ROOT / "docs" / "asha_vs_full.json"))
    parser.add_argument("--figure", default=str(ROOT / "docs" / "figures" / "asha_vs_full.png"))
    parser.add_argument("--plot-only", action="store_true", help="only redraw the figure from --work")
    args = parser.parse_args()
    if args.plot_only:
        plot_curves(Path(args.work), args.variant, Path(args.figure))
        return

    from dataclasses import replace

    from pipeline.tune.search import tune_variant

    params = load_params(args.params)
    spec = params.tune[args.variant]
    dataset = params.variant(args.variant).dataset
    work = Path(args.work)
    summaries, trials = {}, {}
    for scheduler in ("asha", "fifo"):
        run_spec = spec.model_copy(update={
            "scheduler": scheduler, "num_samples": args.num_samples, "max_epochs": args.max_epochs,
            "grace_epochs": args.grace_epochs, "reduction_factor": args.reduction_factor,
            **({"space": args.space} if args.space else {})})
        run_params = replace(params, tune={args.variant: run_spec})
        out = work / "out" / scheduler
        summaries[scheduler] = tune_variant(run_params, args.variant, ROOT / "data" / "prepared" / f"{dataset}.npz",
                                            ROOT / "evaluators" / dataset, out, work / scheduler, ROOT)
        trials[scheduler] = pd.read_csv(out / "trials.csv")
    keys = list((args.space or spec.space))
    same = trials["asha"][keys].round(12).equals(trials["fifo"][keys].round(12))
    asha, full = summaries["asha"], summaries["fifo"]
    result = {
        "variant": args.variant, "objective": asha["objective"], "num_samples": args.num_samples,
        "max_epochs": args.max_epochs, "grace_epochs": args.grace_epochs, "reduction_factor": args.reduction_factor,
        "same_configs": bool(same),
        "asha": {k: asha[k] for k in ("best", "trial_epochs", "full_budget_epochs", "wall_s")},
        "full": {k: full[k] for k in ("best", "trial_epochs", "full_budget_epochs", "wall_s")},
        "best_ratio": asha["best"]["objective"] / full["best"]["objective"],
        "epoch_share": asha["trial_epochs"] / full["trial_epochs"],
        "wall_ratio": asha["wall_s"] / full["wall_s"],
        "trials": {s: t.to_dict("records") for s, t in trials.items()},
    }
    Path(args.out).write_text(json.dumps(result, indent=2, default=str) + "\n")
    name = asha["objective"]["name"]
    print(f"| search | best {name} (+- std over subsets) | best trial | trial-epochs | wall s |")
    print("|---|---|---|---|---|")
    for label, s in (("full (every trial to max_epochs)", full), ("ASHA", asha)):
        b = s["best"]
        std = f" +- {b['objective_std']:.1f}" if b["objective_std"] is not None else ""
        print(f"| {label} | {b['objective']:.1f}{std} | {b['trial_id']} {b['config']} | {s['trial_epochs']} | {s['wall_s']:.0f} |")
    plot_curves(work, args.variant, Path(args.figure))
    print(f"same configs: {same}; ASHA best / full best = {result['best_ratio']:.3f}; "
          f"ASHA used {100 * result['epoch_share']:.0f}% of the trial-epochs and {100 * result['wall_ratio']:.0f}% of the wall time")


if __name__ == "__main__":
    main()
