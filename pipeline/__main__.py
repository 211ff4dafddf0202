"""Command line: ``python -m pipeline sample VARIANT -n N --out FILE.npz [--png FILE.png] [--label K]``
``python -m pipeline translate VARIANT --direction AB --in DIR --out DIR``,
``python -m pipeline mix VARIANT --out grid.png`` (a StyleGAN's style-mixing grid) and
``python -m pipeline tune-apply VARIANT`` (the best tuned config into ``params.yaml``) and
``python -m pipeline profile NAME`` (``make run PROFILE=NAME``: a profile as a DVC experiment) and
``python -m pipeline ui`` (``make ui``: ``mlflow ui`` on loopback, printing the runs table's address).

The one place in ``pipeline/`` that parses arguments (DESIGN.md keeps CLI parsing in ``stages/``;
the issue asks for ``python -m pipeline``, so this module stays a thin shell over ``sampling``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from pipeline.schema_base import SEED_MAX  # the seeds the params accept

SAMPLE_MAX = 100_000  # samples per call: 100,000 64x64 RGB images are 4.9 GB of float32
MIX_MAX = 16  # sources per side of a style-mixing grid: (16 + 1)^2 = 289 cells


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments give one line, ``error: <what>`` (the usage is ``--help``), and exit 2."""

    def error(self, message: str):
        print(f"error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        sys.exit(2)


def bounded_int(low: int, high: int):
    """An argparse type: an integer in ``low .. high`` (argparse names the option in its error)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer; allowed: {low} .. {high}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value}: allowed: {low} .. {high}")
        return value
    return parse


def output_problem(option: str, path: str | None, force: bool, inputs: dict[str, str | None] | None = None) -> str | None:
    """Why the file ``path`` (the value of ``option``) must not be written, or None: it is a folder,
    it is the path of another option of ``inputs`` (option -> path; even ``--force`` cannot make one
    file two), or it exists and ``force`` is not given."""
    if path is None:
        return None
    if Path(path).is_dir():
        return f"{option} {path}: is a folder; give a file path"
    target = Path(path).resolve()
    for other, other_path in (inputs or {}).items():
        if other_path is not None and Path(other_path).resolve() == target:
            return f"{option} {path}: the same path as {other}; give another path"
    if Path(path).exists() and not force:
        return f"{option} {path}: exists; give a new path, or --force to replace it"
    return None


def trained_model_dir(args: argparse.Namespace) -> Path | None:
    """models/VARIANT (or its --train-seed run); prints the problem and returns None if there is none."""
    from pipeline.artifacts import seed_model_dirs

    try:
        runs = seed_model_dirs(Path(args.models) / args.variant)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return None
    train_seed = next(iter(runs)) if args.train_seed is None else args.train_seed
    if train_seed not in runs:
        print(f"error: --train-seed {train_seed}: {args.variant} was trained with seeds "
              f"{', '.join(map(str, runs))}", file=sys.stderr)
        return None
    return runs[train_seed]


def sample_command(args: argparse.Namespace) -> int:
    """``-n`` samples as an .npz (and a picture), each written atomically; existing files are kept
    unless ``--force``."""
    from pipeline.artifacts import atomic_path
    from pipeline.images import preview, save_png
    from pipeline.sampling import draw, load_generator

    problem = output_problem("--out", args.out, args.force) or output_problem(
        "--png", args.png, args.force, {"--out": args.out})
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    model_dir = trained_model_dir(args)
    if model_dir is None:
        return 2
    family, nets, _ = load_generator(model_dir)
    if family.translates:
        print(f"error: {args.variant} translates images rather than sampling them; use "
              f"`python -m pipeline translate {args.variant} --direction AB --in DIR --out DIR`", file=sys.stderr)
        return 2
    conditional = family.num_classes() > 0
    if args.label is not None and not conditional:
        print(f"error: --label {args.label}: {args.variant} is not conditional (set conditional: true)", file=sys.stderr)
        return 2
    if args.label is not None and not 0 <= args.label < family.num_classes():
        print(f"error: --label {args.label}: allowed 0 .. {family.num_classes() - 1}", file=sys.stderr)
        return 2
    if conditional:  # one class, or balanced classes
        labels = np.full(args.n, args.label) if args.label is not None else family.balanced_labels(args.n).numpy()
    else:
        labels = np.full(args.n, -1)
    samples = draw(family, nets, args.n, args.seed, labels=labels if conditional else None)
    out = Path(args.out)  # images [N, C, H, W] in [-1, 1] or points [N, 2]
    key = "points" if samples.ndim == 2 else "images"
    with atomic_path(out) as tmp, open(tmp, "xb") as handle:  # a handle: np.savez would add ".npz" to a path
        np.savez(handle, **{key: samples}, labels=labels.astype(np.int64))
    if args.png:
        save_png(preview(samples if samples.ndim == 2 else samples[:256]), args.png)
    print(f"wrote {len(samples)} {key} {list(samples.shape[1:])} to {out}" + (f" and {args.png}" if args.png else ""))
    return 0


def mix_command(args: argparse.Namespace) -> int:
    """The style-mixing grid of a trained StyleGAN (its family's ``style_mixing_grid``) as a PNG."""
    from pipeline.images import make_grid, save_png, to_uint8
    from pipeline.sampling import load_generator

    if problem := output_problem("--out", args.out, args.force):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    model_dir = trained_model_dir(args)
    if model_dir is None:
        return 2
    family, nets, _ = load_generator(model_dir)
    grid = family.style_mixing_grid(nets, args.n, args.seed)
    if grid is None:
        print(f"error: {args.variant} is family {family.cfg.family!r}, which has no styles to mix; style mixing "
              "needs a StyleGAN variant", file=sys.stderr)
        return 2
    save_png(make_grid(to_uint8(grid), ncol=args.n + 1), args.out)
    print(f"wrote {args.out}: first row = fine-style sources, first column = coarse-style (4x4-8x8) sources, "
          f"cell = coarse from its row, fine from its column")
    return 0


def translate_command(args: argparse.Namespace) -> int:
    """Every PNG/JPEG of --in, converted to the model's channels and size, translated, written to
    --out as PNG under the same name. All images are read before anything is written; a new --out
    appears whole (a directory renamed into place), into an existing one each file is replaced
    atomically, and only with --force where a file of that name exists or --out is --in."""
    from pipeline.artifacts import atomic_path
    from pipeline.data import to_unit_range
    from pipeline.data.folders import FolderError, image_files, load_image
    from pipeline.images import save_png, to_uint8
    from pipeline.sampling import load_generator

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        print(f"error: --out {args.out}: exists and is not a folder; give a folder", file=sys.stderr)
        return 2
    if out.resolve() == Path(args.in_dir).resolve() and not args.force:
        print(f"error: --out {args.out}: the same folder as --in, whose images it would replace; give another "
              "folder, or --force", file=sys.stderr)
        return 2
    model_dir = trained_model_dir(args)
    if model_dir is None:
        return 2
    family, nets, spec = load_generator(model_dir)
    if not family.translates:
        print(f"error: {args.variant} (family {family.cfg.family}) does not translate images; use "
              f"`python -m pipeline sample {args.variant}`", file=sys.stderr)
        return 2
    try:
        files = image_files(Path(args.in_dir))
        names = translated_names(files)
        images = np.stack([load_image(f, spec.channels, spec.image_size) for f in files])  # [N, C, S, S]
    except FolderError as err:
        print(f"error: --in: {err}", file=sys.stderr)
        return 2
    clash = next((name for name in names if (out / name).exists()), None)
    if clash is not None and not args.force:
        print(f"error: --out {args.out}: {clash} exists; give a new folder, or --force to replace its files",
              file=sys.stderr)
        return 2
    translated = to_uint8(family.translate(nets, to_unit_range(images), args.direction))
    pictures = [image[0] if spec.channels == 1 else image.transpose(1, 2, 0) for image in translated]
    if out.exists():
        for name, picture in zip(names, pictures):
            save_png(picture, out / name)
    else:
        with atomic_path(out, directory=True) as tmp:
            for name, picture in zip(names, pictures):
                save_png(picture, tmp / name)
    print(f"translated {len(files)} images {args.direction} ({spec.channels}x{spec.image_size}x{spec.image_size}) "
          f"from {args.in_dir} into {out}")
    return 0


def translated_names(files: list[Path]) -> list[str]:
    """``<stem>.png`` of each input; two inputs that would share a name (a.png, a.jpg) are an error."""
    from pipeline.data.folders import FolderError

    names = [f"{path.stem}.png" for path in files]
    seen: dict[str, Path] = {}
    for name, path in zip(names, files):
        if name in seen:
            raise FolderError(f"{seen[name].name} and {path.name} would both be written as {name}; rename one")
        seen[name] = path
    return names


def tune_apply_command(args: argparse.Namespace) -> int:
    from pipeline.config import ConfigError
    from pipeline.tune.apply import apply_best

    best = Path(args.tune_dir) / args.variant / "best.json"
    try:
        changes = apply_best(Path(args.params), args.variant, best)
    except ConfigError as err:
        for line in err.problems:
            print(f"error: {line}", file=sys.stderr)
        return 2
    for key, (old, new) in changes.items():
        print(f"variants.{args.variant}.{key}: {old} -> {new}")
    print(f"{args.params}: {len(changes)} value(s) of {args.variant} set from {best}"
          + ("; `dvc repro` trains it" if changes else " (already applied)"))
    return 0


def profile_command(args: argparse.Namespace) -> int:
    """Validate the profile's params, then run it with ``dvc exp run --temp``: params.yaml and the
    git tree stay as they are; the experiment records the params, metrics and outputs."""
    import os
    import time

    from pipeline.config import ConfigError, load_params
    from pipeline.profiles import ProfileError, experiment_command, profile_path
    from pipeline.train.local_cluster import run_to_end, shared_ray

    root = Path.cwd()
    try:
        load_params(profile_path(args.name, root))
        command = experiment_command(args.name, root, time.strftime("%Y%m%d-%H%M%S"))
    except (ConfigError, ProfileError) as err:
        for line in str(err).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return 2
    # The experiment runs in a copy under .dvc/tmp/exps: keep its MLflow runs in this workspace's store.
    env = {**os.environ}
    env.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    print("running:", " ".join(command), flush=True)
    with shared_ray() as ray_env:
        done = run_to_end(command, {**env, **ray_env})
    if done == 0:
        print(f"profile {args.name}: see `dvc exp show`; `dvc exp apply {command[command.index('--name') + 1]}` brings its params and "
              "outputs into the workspace; MLflow has its runs (`mlflow ui`)")
    return done


def repro_command(args: argparse.Namespace) -> int:
    """``dvc repro`` (of the given targets) with one local Ray head that every stage joins
    (:mod:`pipeline.train.local_cluster`); a stage run on its own starts its own Ray instead."""
    import os
    import subprocess

    from pipeline.train.local_cluster import run_to_end, shared_ray

    # Nothing to run (`dvc status -q` exits 0): no Ray head, whose start-up would be most of a no-op
    # repro's time (25 s against 2 s measured). Any other answer (changes, errors) takes the full path.
    if subprocess.run(["dvc", "status", "-q", *args.targets]).returncode == 0:
        return run_to_end(["dvc", "repro", *args.targets], dict(os.environ))
    with shared_ray() as ray_env:
        return run_to_end(["dvc", "repro", *args.targets], {**os.environ, **ray_env})


def ui_command(args: argparse.Namespace) -> int:
    """``mlflow ui`` on loopback over this checkout's store, after printing the runs table's address."""
    import os

    from pipeline.tracking import runs_page, tracking_uri

    uri = tracking_uri(Path.cwd())
    print(f"gan-lab runs: {runs_page(uri, f'http://127.0.0.1:{args.port}')}", flush=True)
    os.execvp(sys.executable, [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
                               "--host", "127.0.0.1", "--port", str(args.port)])
    return 0  # not reached: exec replaces this process


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m pipeline", description="gan-lab commands")
    commands = parser.add_subparsers(dest="command", required=True)
    sample = commands.add_parser("sample", help="draw samples from a trained variant")
    sample.add_argument("variant", help="variant name in params.yaml (its model is models/VARIANT)")
    sample.add_argument("-n", type=bounded_int(1, SAMPLE_MAX), default=64, help=f"number of samples (1 .. {SAMPLE_MAX})")
    sample.add_argument("--out", required=True,
                        help=".npz to write: images [N, C, H, W] in [-1, 1] or points [N, 2], and labels [N]")
    sample.add_argument("--png", help="also write a picture: a grid of (up to 256) images or a scatter of points")
    sample.add_argument("--seed", type=bounded_int(0, SEED_MAX), default=0, help="seed of the latent draws")
    sample.add_argument("--force", action="store_true", help="replace --out and --png if they exist")
    sample.add_argument("--label", type=int, help="class of every sample (conditional variants; default: "
                        "balanced classes); labels are saved beside the samples, -1 if unconditional")
    sample.add_argument("--train-seed", type=int, help="which seed's model, for a variant trained with "
                        "a seeds list (default: the first)")
    sample.add_argument("--models", default="models", help="directory holding the trained models")
    apply = commands.add_parser("tune-apply", help="write a tuning job's best config into params.yaml")
    apply.add_argument("variant", help="tuned variant (its result is TUNE_DIR/VARIANT/best.json)")
    apply.add_argument("--params", default="params.yaml", help="params file to edit")
    apply.add_argument("--tune-dir", default="tune", help="directory of the tuning results")
    translate = commands.add_parser("translate", help="translate a folder of images with a trained "
                                    "translation variant (CycleGAN)")
    translate.add_argument("variant", help="variant name in params.yaml (its model is models/VARIANT)")
    translate.add_argument("--direction", choices=["AB", "BA"], default="AB",
                           help="AB: domain A -> B with G_AB (default); BA: B -> A with G_BA")
    translate.add_argument("--in", dest="in_dir", required=True, help="folder of PNG/JPEG images to translate")
    translate.add_argument("--out", required=True, help="folder to write the translated PNGs to (same names)")
    translate.add_argument("--force", action="store_true", help="replace PNGs of the same names in --out "
                           "(also when --out is --in)")
    translate.add_argument("--train-seed", type=int, help="which seed's model, for a variant trained with "
                           "a seeds list (default: the first)")
    translate.add_argument("--models", default="models", help="directory holding the trained models")
    mix = commands.add_parser("mix", help="draw the style-mixing grid of a trained StyleGAN variant")
    mix.add_argument("variant", help="variant name in params.yaml (its model is models/VARIANT)")
    mix.add_argument("--out", required=True, help="PNG to write")
    mix.add_argument("-n", type=bounded_int(1, MIX_MAX), default=6,
                     help=f"sources per side, 1 .. {MIX_MAX} (the grid is (n + 1) x (n + 1))")
    mix.add_argument("--seed", type=bounded_int(0, SEED_MAX), default=0, help="seed of the latent draws")
    mix.add_argument("--force", action="store_true", help="replace --out if it exists")
    mix.add_argument("--train-seed", type=int, help="which seed's model, for a variant trained with a seeds list")
    mix.add_argument("--models", default="models", help="directory holding the trained models")
    profile = commands.add_parser("profile", help="run profiles/NAME.yaml (an overlay on params.yaml) as a "
                                  "DVC experiment in a temporary workspace (`make run PROFILE=NAME`)")
    profile.add_argument("name", help="profile name (profiles/NAME.yaml)")
    repro = commands.add_parser("repro", help="`dvc repro` with one local Ray head that every stage joins "
                                "(`make run`)")
    repro.add_argument("targets", nargs="*", help="stages to reproduce (default: all)")
    ui = commands.add_parser("ui", help="`mlflow ui` on 127.0.0.1, printing the address of the runs table (`make ui`)")
    ui.add_argument("--port", type=bounded_int(1, 65535), default=5000, help="port of the UI (default 5000)")
    args = parser.parse_args(argv)
    try:
        return run_command(args)
    except OSError as err:  # an output folder that cannot be made or written (outputs are atomic: none is partial)
        print(f"error: {err.filename}: {err.strerror}", file=sys.stderr)
        return 2


def run_command(args: argparse.Namespace) -> int:
    if args.command == "profile":
        return profile_command(args)
    if args.command == "ui":
        return ui_command(args)
    if args.command == "repro":
        return repro_command(args)
    if args.command == "mix":
        return mix_command(args)
    if args.command == "translate":
        return translate_command(args)
    if args.command == "tune-apply":
        return tune_apply_command(args)
    return sample_command(args)


if __name__ == "__main__":
    sys.exit(main())
