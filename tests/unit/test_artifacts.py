"""Atomic outputs: a target is replaced whole or not at all, and no temporary is left behind."""

import os

import pytest

from pipeline.artifacts import atomic_path, atomic_write_text


def test_file_is_replaced_whole_with_the_usual_mode(tmp_path):
    target = tmp_path / "sub" / "metrics.json"
    atomic_write_text(target, "old\n")
    atomic_write_text(target, "new\n")
    assert target.read_text() == "new\n"
    assert os.stat(target).st_mode & 0o777 == 0o666 & ~_current_umask()
    assert sorted(p.name for p in target.parent.iterdir()) == ["metrics.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "run.json"
    atomic_write_text(target, "complete\n")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "complete\n"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_directory_is_swapped_whole(tmp_path):
    target = tmp_path / "model"
    for content in ("first", "second"):
        with atomic_path(target, directory=True) as tmp:
            (tmp / "weights").write_text(content)
    assert (target / "weights").read_text() == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    with pytest.raises(ValueError):
        with atomic_path(target, directory=True) as tmp:
            (tmp / "weights").write_text("third, never finished")
            raise ValueError
    assert (target / "weights").read_text() == "second" and [p.name for p in tmp_path.iterdir()] == ["model"]


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
