"""Hostile and bad input to the command line and the image-folder readers, built for real.

The CLI (``python -m pipeline``): out-of-range ``-n``/``--seed`` are one ``error:`` line naming the
option and what is allowed (exit 2, no traceback); ``sample``, ``mix`` and ``translate`` keep
existing outputs and never write over ``--in`` unless ``--force``, and write atomically.
Image folders: a decompression bomb, a GIF or a text file named ``.png``, a symlink out of the
folder or into a loop, and a named pipe called ``.png`` are each one line naming the file; nothing
is written. (The models here are untrained: the checks are about files, not quality.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from helpers import ROOT, tiny_params
from pipeline.__main__ import main
from pipeline.config import ImageFolderConfig, parse_params
from pipeline.data import DataSpec, prepare
from pipeline.data.errors import DataError
from pipeline.families import family_for
from pipeline.sampling import save_generator
from test_data_formats import png_header


def save_untrained(models: Path, name: str, raw: dict) -> None:
    family = family_for(parse_params(raw).variant(name))
    save_generator(models / name, family, family.build(DataSpec(1, 16, 10)), DataSpec(1, 16, 10))


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """models/dcgan and models/cyclegan: tiny untrained generators as `train` saves them."""
    models = tmp_path_factory.mktemp("models")
    save_untrained(models, "dcgan", tiny_params())
    raw = tiny_params()
    raw["datasets"]["d2t"] = {"kind": "digits_to_typed", "image_size": 16, "typed_train": 200, "typed_test": 60}
    raw["evaluators"]["d2t"] = {}
    raw["variants"] = {"cyclegan": {"family": "cyclegan", "dataset": "d2t", "epochs": 1, "batch_size": 8,
                                    "g_width": 8, "g_blocks": 1, "d_width": 8}}
    save_untrained(models, "cyclegan", raw)
    return models


def run_main(argv: list[str], capsys) -> tuple[int, list[str]]:
    """``python -m pipeline ARGV`` in-process: (exit code, stderr lines)."""
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's errors
        code = stop.code
    return code, capsys.readouterr().err.strip().splitlines()


def test_mix_n_minus_5_is_one_line_not_a_traceback(tmp_path):
    """The reported case, as a user runs it."""
    done = subprocess.run([sys.executable, "-m", "pipeline", "mix", "stylegan", "-n", "-5", "--out",
                           str(tmp_path / "grid.png")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.splitlines() == [
        "error: argument -n: -5: allowed: 1 .. 16 (see `python -m pipeline mix --help`)"]
    assert not (tmp_path / "grid.png").exists()


@pytest.mark.parametrize("argv, line", [
    (["sample", "dcgan", "-n", "0"], "argument -n: 0: allowed: 1 .. 100000"),
    (["sample", "dcgan", "-n", "-5"], "argument -n: -5: allowed: 1 .. 100000"),
    (["sample", "dcgan", "-n", "100001"], "argument -n: 100001: allowed: 1 .. 100000"),
    (["sample", "dcgan", "-n", "1e3"], "argument -n: '1e3' is not an integer; allowed: 1 .. 100000"),
    (["sample", "dcgan", "--seed", "-1"], "argument --seed: -1: allowed: 0 .. 4294967295"),
    (["sample", "dcgan", "--seed", str(2**64)], f"argument --seed: {2**64}: allowed: 0 .. 4294967295"),
    (["mix", "dcgan", "-n", "17"], "argument -n: 17: allowed: 1 .. 16"),
    (["mix", "dcgan", "-n", "0"], "argument -n: 0: allowed: 1 .. 16"),
])
def test_out_of_range_numbers_are_one_line_naming_the_option(argv, line, tmp_path, capsys):
    code, lines = run_main([*argv, "--out", str(tmp_path / "x")], capsys)
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {line} (see `python -m pipeline ")
    assert not list(tmp_path.iterdir())


def test_sample_keeps_existing_outputs_unless_forced_and_writes_atomically(models, tmp_path, capsys):
    out, png = tmp_path / "s.npz", tmp_path / "s.png"
    base = ["sample", "dcgan", "-n", "4", "--models", str(models), "--out", str(out)]
    assert run_main([*base, "--png", str(png)], capsys)[0] == 0
    with np.load(out) as data:
        assert data["images"].shape == (4, 1, 16, 16)
    before = out.read_bytes(), png.read_bytes()
    code, lines = run_main([*base[:3], "9", *base[4:]], capsys)
    assert code == 2 and lines == [f"error: --out {out}: exists; give a new path, or --force to replace it"]
    code, lines = run_main([*base[:3], "9", *base[4:], "--png", str(tmp_path / "new.png")], capsys)
    assert code == 2 and not (tmp_path / "new.png").exists()  # refused before anything is drawn
    code, lines = run_main(["sample", "dcgan", "--models", str(models), "--out", str(tmp_path / "n.npz"),
                            "--png", str(png)], capsys)
    assert code == 2 and lines == [f"error: --png {png}: exists; give a new path, or --force to replace it"]
    code, lines = run_main(["sample", "dcgan", "--models", str(models), "--out", str(tmp_path / "same"),
                            "--png", str(tmp_path / "same"), "--force"], capsys)
    assert code == 2 and lines == [f"error: --png {tmp_path / 'same'}: the same path as --out; give another path"]
    assert (out.read_bytes(), png.read_bytes()) == before
    assert run_main([*base[:3], "9", *base[4:], "--png", str(png), "--force"], capsys)[0] == 0
    with np.load(out) as data:
        assert data["images"].shape == (9, 1, 16, 16)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npz", "s.png"]  # no temporaries left


def test_mix_keeps_an_existing_picture_and_refuses_a_folder(models, tmp_path, capsys):
    (tmp_path / "grid.png").write_bytes(b"mine")
    code, lines = run_main(["mix", "dcgan", "--models", str(models), "--out", str(tmp_path / "grid.png")], capsys)
    assert code == 2 and lines == [f"error: --out {tmp_path / 'grid.png'}: exists; give a new path, or --force to "
                                   "replace it"]
    code, lines = run_main(["mix", "dcgan", "--models", str(models), "--out", str(tmp_path), "--force"], capsys)
    assert code == 2 and lines == [f"error: --out {tmp_path}: is a folder; give a file path"]
    assert (tmp_path / "grid.png").read_bytes() == b"mine"


def pictures(folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.new("L", (20, 20), 40 * i).save(folder / name)
    return folder


def test_translate_keeps_inputs_and_existing_outputs_unless_forced(models, tmp_path, capsys):
    src = pictures(tmp_path / "in", ["a.png", "b.jpg"])
    (src / "notes.txt").write_text("keep me")
    originals = {p.name: p.read_bytes() for p in src.iterdir()}
    base = ["translate", "cyclegan", "--models", str(models), "--in", str(src)]
    code, lines = run_main([*base, "--out", str(src)], capsys)
    assert code == 2 and lines == [f"error: --out {src}: the same folder as --in, whose images it would replace; "
                                   "give another folder, or --force"]
    out = tmp_path / "out"
    assert run_main([*base, "--out", str(out)], capsys)[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # the folder was renamed into place
    first = (out / "a.png").read_bytes()
    code, lines = run_main([*base, "--out", str(out), "--direction", "BA"], capsys)
    assert code == 2 and lines == [f"error: --out {out}: a.png exists; give a new folder, or --force to replace "
                                   "its files"]
    assert (out / "a.png").read_bytes() == first
    assert run_main([*base, "--out", str(src), "--force"], capsys)[0] == 0  # into --in: its PNGs replaced
    assert (src / "notes.txt").read_text() == "keep me" and (src / "b.jpg").read_bytes() == originals["b.jpg"]
    assert (src / "a.png").read_bytes() != originals["a.png"] and Image.open(src / "b.png").size == (16, 16)
    assert {p.name for p in src.iterdir()} == {"a.png", "b.jpg", "b.png", "notes.txt"}


@pytest.mark.parametrize("breakage, message", [
    ("clash", "a.jpg and a.png would both be written as a.png; rename one"),
    ("gif", "a.png: not a readable image (not PNG or JPEG, or corrupt)"),
    ("text", "a.png: not a readable image (not PNG or JPEG, or corrupt)"),
    ("bomb", "a.png: 9000x9000 pixels, over the limit of 64,000,000 (a decompression bomb?)"),
    ("outside", "a.png: symlink to"),
])
def test_translate_refuses_hostile_input_folders_writing_nothing(breakage, message, models, tmp_path, capsys):
    src = pictures(tmp_path / "in", ["b.png"])
    make_breakage(src / "a.png", breakage, tmp_path / "outside")
    code, lines = run_main(["translate", "cyclegan", "--models", str(models), "--in", str(src), "--out",
                            str(tmp_path / "out")], capsys)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: --in: ") and message in lines[0], lines
    assert not (tmp_path / "out").exists()


def make_breakage(path: Path, breakage: str, outside: Path) -> None:
    """One hostile file at ``path`` (a name ending in .png), made for real; ``outside``: a folder
    outside the dataset (created) for the symlinks to lead to."""
    outside.mkdir(exist_ok=True)
    if breakage == "clash":
        Image.new("L", (20, 20)).save(path)
        Image.new("L", (20, 20)).save(path.with_suffix(".jpg"))
    elif breakage == "gif":
        Image.new("L", (20, 20)).save(path, format="GIF")
    elif breakage == "text":
        path.write_text("#!/bin/sh\necho not an image\n")
    elif breakage == "bomb":  # 81 megapixels declared in 57 bytes
        path.write_bytes(png_header(9_000, 9_000))
    elif breakage == "outside":
        Image.new("L", (20, 20)).save(outside / "secret.png")
        path.symlink_to(outside / "secret.png")
    elif breakage == "loop":
        path.symlink_to(path.with_name("z.png"))
        path.with_name("z.png").symlink_to(path)
    elif breakage == "fifo":
        os.mkfifo(path)
    elif breakage == "outside_folder":  # a class folder that is a symlink to a folder outside
        Image.new("L", (20, 20)).save(outside / "x.png")
        path.parent.with_name("c").symlink_to(outside)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("breakage, message", [
    ("bomb", "a/x.png: 9000x9000 pixels, over the limit of 64,000,000 (a decompression bomb?)"),
    ("gif", "a/x.png: not a readable image (not PNG or JPEG, or corrupt)"),
    ("text", "a/x.png: not a readable image (not PNG or JPEG, or corrupt)"),
    ("outside", "a/x.png: symlink to"),
    ("outside_folder", "/c: symlink to"),
    ("loop", "png: symlink that cannot be resolved (Symlink loop from"),
    ("fifo", "a/x.png: not a regular file (a pipe, device or broken link)"),  # (it blocked the read forever)
])
def test_image_folder_refuses_hostile_files_naming_them_and_writes_nothing(breakage, message, tmp_path):
    root = tmp_path / "pics"
    for name in ("a", "b"):
        pictures(root / name, [f"{i}.png" for i in range(4)])
    make_breakage(root / "a" / "x.png", breakage, tmp_path / "outside")
    out = tmp_path / "prepared" / "pics.npz"
    with pytest.raises(DataError) as info:
        prepare(ImageFolderConfig(kind="image_folder", path=str(root), channels=1, image_size=16), out)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not out.parent.exists()


def test_prepare_stage_turns_a_bomb_into_one_line_and_exit_2(tmp_path):
    root = pictures(tmp_path / "pics", [f"{i}.png" for i in range(4)])
    (root / "bomb.png").write_bytes(png_header(20_000, 20_000))  # 400 Mpx: over PIL's own limit too
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(
        {"datasets": {"pics": {"kind": "image_folder", "path": str(root)}}, "variants": {}}))
    out = tmp_path / "prepared" / "pics.npz"
    done = subprocess.run([sys.executable, str(ROOT / "stages" / "prepare.py"), "--dataset", "pics", "--out", str(out),
                           "--params", str(tmp_path / "params.yaml")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.splitlines() == [f"error: datasets.pics: {root / 'bomb.png'}: 20000x20000 pixels, over the "
                                        "limit of 64,000,000 (a decompression bomb?)"] or \
        done.stderr.startswith(f"error: datasets.pics: {root / 'bomb.png'}: refused as a decompression bomb")
    assert len(done.stderr.splitlines()) == 1 and not out.parent.exists()
