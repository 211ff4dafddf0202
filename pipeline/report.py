"""The comparison report: every variant's metrics, samples, loss curves and the two comparisons the
lab exists to measure (minimax vs non-saturating gradients; GAN vs VAE).

Reads what the pipeline wrote (``metrics/<variant>.json``, ``samples/<variant>.png``,
``plots/train/<variant>.csv``) and writes ``index.html`` (self-contained: every picture is embedded
as base64 PNG) and ``summary.md`` (pictures beside it under ``figures/``). Plots use matplotlib.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)

from pipeline.artifacts import atomic_path, read_history, read_json  # noqa: E402
from pipeline.config import Params  # noqa: E402
from pipeline.dataset_schemas import POINT_DATASETS, UNPAIRED_DATASETS  # noqa: E402
from pipeline.families import FAMILIES  # noqa: E402  (each family's report_sections and comparison roles)

# Metric columns per kind of variant: (metrics key, column title, floor key or None).
IMAGE_COLUMNS = [("fid", "FID", "fid_floor"), ("fid_over_floor", "FID / floor", None),
                 ("kid_mean", "KID", "kid_floor_mean"), ("precision", "precision", "precision_floor"),
                 ("recall", "recall", "recall_floor"), ("density", "density", "density_floor"),
                 ("coverage", "coverage", "coverage_floor")]
CONDITIONAL_COLUMNS = [("label_accuracy", "label accuracy", None), ("intra_fid", "intra-FID", "intra_fid_floor"),
                       ("cas", "CAS", "cas_real")]
MIXTURE_COLUMNS = [("modes", "modes", "modes_floor"), ("high_quality", "high quality", "high_quality_floor"),
                   ("reverse_kl", "reverse KL", "reverse_kl_floor"),
                   ("grad_norm_ratio_early", "NS / minimax grad norm, first 10%", None)]
TRANSLATION_COLUMNS = [("label_preservation_ab", "label kept A->B", None), ("label_preservation_ba", "label kept B->A", None),
                       ("fid_ab", "FID A->B", "fid_ab_floor"), ("fid_ab_over_floor", "A->B / floor", None),
                       ("fid_ba", "FID B->A", "fid_ba_floor"), ("fid_ba_over_floor", "B->A / floor", None),
                       ("cycle_l1_a", "cycle L1 A", None), ("cycle_l1_b", "cycle L1 B", None)]
STACKED_COLUMNS = [("modes", "modes (of 1,000)", "modes_floor"), ("kl", "KL to uniform", "kl_floor")]
GAN_VS_VAE_KEYS = [("fid", "FID", "lower"), ("kid_mean", "KID", "lower"), ("precision", "precision", "higher"),
                   ("recall", "recall", "higher"), ("density", "density", "higher"), ("coverage", "coverage", "higher")]


@dataclass
class Section:
    title: str
    text: list[str] = field(default_factory=list)       # paragraphs (plain text)
    table: list[list[str]] = field(default_factory=list)  # header row first
    figures: list[tuple[str, bytes]] = field(default_factory=list)  # (caption, PNG bytes)


def fmt(metrics: dict, key: str) -> str:
    """``mean ± std`` over seeds where a spread exists, else the value; '-' if missing."""
    value = metrics.get(key)
    if not isinstance(value, (int, float)):
        return "-"
    spread = metrics.get("std", {}).get(key)
    text = f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return text + (f" ± {spread:.2g}" if spread is not None else "")


def load_metrics(metrics_dir: Path, params: Params) -> dict[str, dict]:
    """``{variant: metrics}`` for every variant of params with a metrics file."""
    found = {}
    for name in params.variants:
        path = metrics_dir / f"{name}.json"
        if path.is_file():
            found[name] = read_json(path)
    return found


def metric_table(names: list[str], metrics: dict[str, dict], columns: list[tuple]) -> list[list[str]]:
    header = ["variant"] + [title + (" (floor)" if floor else "") for _, title, floor in columns]
    rows = [header]
    for name in names:
        m = metrics[name]
        seeds = f" ({len(m['seeds'])} seeds)" if "seeds" in m else ""
        rows.append([f"{name}{seeds}"] + [fmt(m, key) + (f" ({fmt(m, floor)})" if floor else "")
                                          for key, _, floor in columns])
    return rows


def png_of(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def read_csv(path: Path) -> dict[str, list[float]]:
    """Columns of a per-step history CSV as float lists (empty cells skipped per column)."""
    columns: dict[str, list[float]] = {}
    for row in read_history(path):
        for key, value in row.items():
            columns.setdefault(key, []).append(value)
    return columns


def loss_curves(name: str, history: dict[str, list[float]]) -> bytes:
    fig, ax = plt.subplots(figsize=(5, 3))
    for key in sorted(k for k in history if k.startswith("loss/")):
        ax.plot(history["step"][:len(history[key])], history[key], label=key, linewidth=0.8)
    ax.set_xlabel("step")
    ax.set_title(f"{name}: training losses")
    ax.legend(fontsize=7)
    return png_of(fig)


def gradient_plot(histories: dict[str, dict[str, list[float]]]) -> bytes:
    """G's gradient norm under both generator losses on the same D, per run, log scale."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, history in histories.items():
        for key, style in (("grad_norm/G_minimax", "-"), ("grad_norm/G_nonsaturating", "--")):
            steps, values = np.asarray(history["step"]), np.asarray(history[key])
            window = max(1, len(values) // 100)  # geometric running mean over 1% of the steps, for legibility
            smooth = 10 ** np.convolve(np.log10(np.maximum(values, 1e-12)), np.ones(window) / window, mode="valid")
            ax.plot(steps[window - 1:], smooth, style, linewidth=1.0, label=f"{name}: {key.split('_', 2)[2]}")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("||dL_G / d theta_G||")
    ax.set_title("G's gradient norm under each loss (same D and fakes; running geometric mean)", fontsize=9)
    ax.legend(fontsize=7)
    return png_of(fig)


def gan_vs_vae(gan: dict, vae: dict, gan_name: str, vae_name: str, epochs: tuple[int, int]) -> list[str]:
    """The measured outcome in words and numbers (no claim that the numbers do not make)."""
    budget = f"{gan_name}: {epochs[0]} epochs, {vae_name}: {epochs[1]} epochs"
    if epochs[0] == epochs[1]:
        lines = [f"Equal training budget: {budget}. Same N, same evaluator, floors as in the table."]
    else:  # say so: a comparison at unequal budgets must not read as a fair one
        lines = [f"Unequal training budgets: {budget}; read the comparison with that in mind. Same N, "
                 f"same evaluator, floors as in the table."]
    seeded = "std" in gan and "std" in vae
    if not seeded:  # one seed has no spread: the winner of a close metric may not survive another seed
        lines.append("One seed each: no spread was measured, so a small difference may not hold for other "
                     "seeds; train with `seeds: [0, 1, 2]` for the spread.")
    for key, title, better in GAN_VS_VAE_KEYS:
        if key not in gan or key not in vae:
            continue
        g, v = gan[key], vae[key]
        winner = gan_name if (g < v) == (better == "lower") else vae_name
        verdict = f"{winner} is better"
        if seeded and abs(g - v) <= 2 * (gan["std"].get(key, 0.0) ** 2 + vae["std"].get(key, 0.0) ** 2) ** 0.5:
            verdict = "no clear winner (the difference is within 2 spreads over seeds)"
        lines.append(f"{title} ({better} is better): {gan_name} {fmt(gan, key)}, {vae_name} {fmt(vae, key)}"
                     f" -> {verdict}.")
    if "elbo" in vae:
        lines.append(f"Only the VAE gives a likelihood bound: test ELBO {fmt(vae, 'elbo')} nats per image "
                     f"(a GAN has none).")
    return lines


def tuning_section(params: Params, tune_dir: Path) -> Section | None:
    """Tuned vs default: each tuning job's default-config trial against its best trial, same budget."""
    header = ["variant", "search", "objective", "default config", "default result", "best config", "best result",
              "trial-epochs", "applied to params"]
    rows = []
    for name in params.tune:
        path = tune_dir / name / "best.json"
        if not path.is_file():
            continue
        best = read_json(path)
        objective = f"{best['objective']['name']} ({best['objective']['mode']})"
        result = lambda t: "-" if t is None else (  # noqa: E731
            f"{t['objective']:.4g}" + (f" +- {t['objective_std']:.2g}" if t.get("objective_std") is not None else "")
            + f" ({t['epochs']} ep)")
        config = lambda t: "-" if t is None else ", ".join(f"{k}={_short(v)}" for k, v in t["config"].items())  # noqa: E731
        current = params.variants[name].model_dump()
        applied = all(_short(current[k]) == _short(v) for k, v in best["best"]["config"].items())
        rows.append([name, f"{best['scheduler']}, {best['n_trials']} trials", objective, config(best["default"]),
                     result(best["default"]), config(best["best"]), result(best["best"]),
                     f"{best['trial_epochs']} of {best['full_budget_epochs']}", "yes" if applied else "no"])
    if not rows:
        return None
    return Section("Hyperparameter search (Ray Tune)", [
        "Each search's first trial runs the variant's own (default) values; both results are the objective at "
        "the trial's last report, on the same budget. `python -m pipeline tune-apply VARIANT` copies the best "
        "config into params.yaml (then the variant's rows above are the tuned model)."], [header] + rows)


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def build_sections(params: Params, metrics_dir: Path, samples_dir: Path, plots_dir: Path,
                   evaluator_metrics: dict[str, dict], tune_dir: Path | None = None) -> list[Section]:
    metrics = load_metrics(metrics_dir, params)
    datasets = {name: params.datasets[params.variants[name].dataset] for name in metrics}
    kinds = {name: dataset.kind for name, dataset in datasets.items()}
    translations = [n for n in metrics if isinstance(datasets[n], UNPAIRED_DATASETS)]
    # Single images judged by FID: every image kind (digits, mnist, idx, cifar10, image_folder, ...),
    # not 2-D points, not stacked digits (judged by their modes), not two-domain translation data.
    images = [n for n in metrics if kinds[n] not in (*POINT_DATASETS, "stacked_digits") and n not in translations]
    sections = []
    if images:
        table = metric_table(images, metrics, IMAGE_COLUMNS)
        accuracy = ", ".join(f"{d}: {m['test_accuracy']:.3f}" for d, m in evaluator_metrics.items()
                             if m.get("test_accuracy") is not None)
        sections.append(Section("Image variants", [
            "FID, KID, precision/recall (k = 3) and density/coverage (k = 5) in the evaluator classifier's "
            "feature space at N = the test split size; in brackets the real test split's value (the floor). "
            f"Evaluator test accuracy: {accuracy}."], table))
    conditional = [n for n in images if "label_accuracy" in metrics[n]]
    if conditional:
        sections.append(Section("Conditional variants", [
            "Label accuracy of generated samples under the evaluator; intra-class FID (brackets: real test "
            "images per class); CAS = accuracy on the real test split of a classifier trained only on generated "
            "samples (brackets: the same classifier trained on real data)."],
            metric_table(conditional, metrics, CONDITIONAL_COLUMNS)))
    family_of = {n: FAMILIES[params.variants[n].family] for n in metrics}
    for family_name, family in FAMILIES.items():  # each family's own tables, in the registry's order
        names = [n for n in images if params.variants[n].family == family_name]
        for table in family.report_sections if names else ():
            sections.append(Section(table.title, list(table.text), metric_table(names, metrics, list(table.columns))))
    vaes = [n for n in images if family_of[n].gan_vs_vae_side == "VAE"]
    gans = [n for n in images if family_of[n].gan_vs_vae_side == "GAN" and n not in conditional]
    if gans and vaes:
        g, v = gans[0], vaes[0]
        epochs = (params.variants[g].epochs, params.variants[v].epochs)
        sections.append(Section("GAN vs VAE", gan_vs_vae(metrics[g], metrics[v], g, v, epochs)))
    for kind, columns in (("ring8", MIXTURE_COLUMNS), ("grid25", MIXTURE_COLUMNS),
                          ("stacked_digits", STACKED_COLUMNS)):
        names = [n for n in metrics if kinds[n] == kind]
        if names:
            sections.append(Section(f"Mode collapse: {kind}", ["Brackets: real test data (the floor)."],
                                    metric_table(names, metrics, columns)))
    if translations:
        sections.append(Section("Translation (CycleGAN)", [
            "Label kept: share of translated test images the target domain's evaluator gives the source label. "
            "FID of translations against the target domain's real train split, in that domain's evaluator "
            "features (brackets: the target's real test images, the floor). Cycle L1: mean |F(G(x)) - x| per "
            "pixel in [-1, 1]."], metric_table(translations, metrics, TRANSLATION_COLUMNS)))
    compared = {n: read_csv(plots_dir / f"{n}.csv") for n in metrics if (plots_dir / f"{n}.csv").is_file()}
    with_both = {n: h for n, h in compared.items() if "grad_norm/G_minimax" in h and "grad_norm/G_nonsaturating" in h
                 and family_of[n].compares_generator_losses}
    if with_both:
        sections.append(Section("Minimax vs non-saturating generator loss", [
            "Each gan run logs, every step, G's gradient norm under both losses on the same fakes and D "
            "(mean over seeds). The saturating (minimax) loss gives G far less gradient while D rejects fakes."],
            figures=[("gradient norms", gradient_plot(with_both))]))
    tuned = tuning_section(params, tune_dir) if tune_dir else None
    if tuned:
        sections.append(tuned)
    samples = [(f"{n}", (samples_dir / f"{n}.png").read_bytes()) for n in metrics if (samples_dir / f"{n}.png").is_file()]
    sections.append(Section("Samples", ["Conditional variants: one row per class. 2-D variants: samples (blue) "
                                        "over the true modes (red). Translation variants, row by row: A test images, "
                                        "A->B, back to A; B test images, B->A, back to B."], figures=samples))
    curves = [(f"{n} losses", loss_curves(n, h)) for n, h in compared.items()]
    sections.append(Section("Training curves", [], figures=curves))
    return sections


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_").lower()


def render_markdown(sections: list[Section], figures_dir: Path) -> str:
    """Markdown with pictures written to ``figures_dir`` (referenced relatively)."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    out = ["# gan-lab report", ""]
    for section in sections:
        out += [f"## {section.title}", ""]
        out += [line + "\n" for line in section.text]
        if section.table:
            out.append("| " + " | ".join(section.table[0]) + " |")
            out.append("|" + "---|" * len(section.table[0]))
            out += ["| " + " | ".join(row) + " |" for row in section.table[1:]]
            out.append("")
        for caption, png in section.figures:
            name = f"{_slug(section.title)}_{_slug(caption)}.png"
            (figures_dir / name).write_bytes(png)
            out += [f"![{caption}]({figures_dir.name}/{name})", ""]
    return "\n".join(out) + "\n"


def render_html(sections: list[Section]) -> str:
    """One self-contained HTML page: tables, and every picture embedded as a data URI."""
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>gan-lab report</title><style>",
             "body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}",
             "td,th{border:1px solid #bbb;padding:3px 6px;font-size:13px}figure{display:inline-block;margin:6px}",
             "</style></head><body><h1>gan-lab report</h1>"]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        parts += [f"<p>{html.escape(line)}</p>" for line in section.text]
        if section.table:
            parts.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in section.table[0]) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in section.table[1:]]
            parts.append("</table>")
        for caption, png in section.figures:
            data = base64.b64encode(png).decode()
            parts.append(f"<figure><img src='data:image/png;base64,{data}'><figcaption>{html.escape(caption)}"
                         "</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(sections: list[Section], out_dir: Path) -> None:
    """``out_dir/index.html`` and ``out_dir/summary.md`` (+ ``figures/``), written aside and swapped
    in whole (:func:`pipeline.artifacts.atomic_path`)."""
    with atomic_path(out_dir, directory=True) as tmp:
        (tmp / "summary.md").write_text(render_markdown(sections, tmp / "figures"))
        (tmp / "index.html").write_text(render_html(sections))
