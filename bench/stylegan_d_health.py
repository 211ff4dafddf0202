"""Does StyleGAN's discriminator discriminate? Per-epoch D(x), D(G(z)) and their gap, for one or more
settings side by side (issue 28's diagnosis). Run from the repo root after `dvc repro prepare@mnist`:

    PYTHONPATH=bench:. python bench/stylegan_d_health.py --epochs 10 --try "" "r1_gamma=0" "lr_d=0.004"

Each setting is ``--variant`` of ``--params`` (default: profiles/stylegan.yaml's ``stylegan`` on the
default MNIST) with the setting's ``key=value`` overrides. One JSON line per setting and epoch:
the growth phase and fade, the epoch's mean D/real and D/fake (sigmoid of D's logits, as the train
step reports them), ``gap`` = D/real - D/fake (0: D at chance), ``logit_gap`` = mean D(x) - mean D(G(z)) in logits
(the per-step metric D/logit_gap), loss/D (2 ln 2 = 1.386 at chance),
loss/R1, and samples/s. The settings run one after another, each from the same seed.
"""

from __future__ import annotations

import argparse
import json

import torch

from plain import parse_overrides, plain_epochs
from pipeline.config import load_params, variant_from_dict
from pipeline.data import load_prepared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="profiles/stylegan.yaml")
    parser.add_argument("--variant", default="stylegan")
    parser.add_argument("--dataset", default="mnist", help="a prepared dataset under data/prepared/")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--try", dest="settings", nargs="+", default=[""],
                        help='settings, each "key=value key=value" ("" is the variant as it is)')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = load_params(args.params).variant(args.variant).model_dump(mode="json")
    data = load_prepared(f"data/prepared/{args.dataset}.npz")
    for setting in args.settings:
        overrides = parse_overrides(setting.split())
        cfg = variant_from_dict({**base, "dataset": args.dataset, "epochs": args.epochs, **overrides})
        means: dict[str, float] = {}
        for epoch, family, nets, rate in plain_epochs(cfg, data, epoch_means=means):
            phase, alpha = nets["G"].growth
            print(json.dumps({"setting": setting or "(as is)", "epoch": epoch, "phase": int(phase),
                              "alpha": round(float(alpha), 3), "D/real": round(means["D/real"], 4),
                              "D/fake": round(means["D/fake"], 4), "gap": round(means["D/real"] - means["D/fake"], 4),
                              "logit_gap": round(means["D/logit_gap"], 3),
                              "loss/D": round(means["loss/D"], 4), "loss/R1": round(means.get("loss/R1", 0.0), 5),
                              "samples_per_s": round(rate)}), flush=True)


if __name__ == "__main__":
    main()
