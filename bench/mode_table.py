"""The mode-collapse table: our variants (mean +- std over seeds) beside the published rows.

Reads params.yaml and metrics/<variant>.json after `dvc repro` (e.g. `make run PROFILE=pacgan`) and
prints a Markdown table per benchmark; `--out FILE` also writes it.

    python bench/mode_table.py --out docs/pacgan_table.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.config import load_params

# PacGAN (Lin et al. 2018) Table 1 (mean of 10 trials) and Table 3 (Stacked MNIST), as in REFERENCE.md.
PUBLISHED_MIXTURES = {  # model: (ring modes, HQ %, rKL, grid modes, HQ %, rKL)
    "GAN": (6.3, 98.2, 0.45, 17.3, 94.8, 0.70), "ALI": (6.6, 97.6, 0.36, 24.1, 95.7, 0.14),
    "PacGAN2": (7.9, 95.6, 0.07, 23.8, 91.3, 0.13), "PacGAN4": (7.8, 95.9, 0.07, 24.8, 93.6, 0.04),
}
PUBLISHED_STACKED = {"DCGAN": (99, 3.40), "PacDCGAN2": (1000, 0.06)}  # (modes, KL), Stacked MNIST


def cell(metrics: dict, key: str, scale: float = 1.0, digits: int = 2) -> str:
    """``mean +- std`` over seeds (just the value for one seed); '-' when missing."""
    value = metrics.get(key)
    if value is None:
        return "-"
    spread = metrics.get("std", {}).get(key)
    text = f"{value * scale:.{digits}f}"
    return text + (f" ± {spread * scale:.{digits}f}" if spread is not None else "")


def describe(cfg) -> str:
    seeds = len(cfg.run_seeds())
    return f"{cfg.loss}, pack {cfg.pack}, {cfg.epochs} epochs, {seeds} seed{'s' if seeds > 1 else ''}"


def tables(metrics_dir: Path, params_path: str = "params.yaml") -> str:
    params = load_params(params_path)
    rows: dict[str, list[str]] = {"ring8": [], "grid25": [], "stacked_digits": []}
    for name, cfg in params.variants.items():
        kind = params.datasets[cfg.dataset].kind
        path = metrics_dir / f"{name}.json"
        if kind not in rows or not path.is_file():
            continue
        m = json.loads(path.read_text())
        if kind == "stacked_digits":
            rows[kind].append(f"| `{name}` ({describe(cfg)}) | {cell(m, 'modes', digits=1)} | {cell(m, 'kl')} |")
        else:
            rows[kind].append(f"| `{name}` ({describe(cfg)}) | {cell(m, 'modes', digits=1)} | "
                              f"{cell(m, 'high_quality', 100, 1)} | {cell(m, 'reverse_kl')} |")
    out = []
    for kind, offset in (("ring8", 0), ("grid25", 3)):
        out += [f"### {kind}", "", "| model | modes | high quality % | reverse KL |", "|---|---|---|---|"]
        out += rows[kind]
        out += [f"| published {model} | {v[offset]} | {v[offset + 1]} | {v[offset + 2]} |"
                for model, v in PUBLISHED_MIXTURES.items()]
        out.append("")
    out += ["'-': undefined (no high-quality sample at all, so no mode histogram).", ""]
    out += ["### stacked_digits (1,000 modes)", "", "| model | modes | KL to uniform |", "|---|---|---|"]
    out += rows["stacked_digits"]
    out += [f"| published {model} (Stacked MNIST) | {v[0]} | {v[1]} |" for model, v in PUBLISHED_STACKED.items()]
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", default="metrics")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out")
    args = parser.parse_args()
    text = tables(Path(args.metrics), args.params)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
