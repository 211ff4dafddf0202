"""Atomic outputs (a target is replaced whole or not at all, no temporary left behind) and the
on-disk formats of pipeline.artifacts: the model directory, the history CSV, the run marker."""

import os

import pytest

from pipeline.artifacts import (HISTORY_FILE, RUN_FILE, atomic_path, atomic_write_text, finish_run_marker,
                                read_generator, read_history, read_run_info, read_run_marker, run_marker_name,
                                save_torch, seed_dir, seed_model_dirs, write_generator, write_history, write_run_info,
                                write_run_marker)


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


def test_the_temporary_keeps_the_target_name_so_bytes_match_an_in_place_write(tmp_path):
    import torch

    # torch.save names its zip records after the file: a differently named temporary would change the bytes.
    torch.save({"w": torch.arange(3)}, tmp_path / "generator.pt")
    expected = (tmp_path / "generator.pt").read_bytes()
    save_torch(tmp_path / "out" / "generator.pt", {"w": torch.arange(3)})
    assert (tmp_path / "out" / "generator.pt").read_bytes() == expected
    with atomic_path(tmp_path / "model", directory=True) as tmp:
        assert tmp.name == "model" and tmp.parent.name.startswith(".model.")
    assert os.stat(tmp_path / "model").st_mode & 0o777 == 0o777 & ~_current_umask()


def test_model_directory_round_trip_and_seed_layout(tmp_path):
    import torch

    weights = {"net": "G", "state_dict": {"w": torch.ones(2)}, "others": {}}
    write_generator(tmp_path / "m", weights, {"seed": 3, "family": "gan"}, {"channels": 1})
    write_run_info(tmp_path / "m", {"run_id": "abc"})
    write_history(tmp_path / "m" / HISTORY_FILE, [{"step": 1, "loss/G": 0.5}, {"step": 2}])
    loaded, config, spec = read_generator(tmp_path / "m")
    assert torch.equal(loaded["state_dict"]["w"], torch.ones(2)) and config["seed"] == 3 and spec == {"channels": 1}
    assert read_run_info(tmp_path / "m") == {"run_id": "abc"}
    assert (tmp_path / "m" / RUN_FILE).read_text() == '{\n  "run_id": "abc"\n}\n'
    assert read_history(tmp_path / "m" / HISTORY_FILE) == [{"step": 1.0, "loss/G": 0.5}, {"step": 2.0}]
    assert seed_model_dirs(tmp_path / "m") == {3: tmp_path / "m"}
    write_generator(seed_dir(tmp_path / "s", 7), weights, {"seed": 7}, {})
    assert seed_model_dirs(tmp_path / "s") == {7: tmp_path / "s" / "seed-7"}
    with pytest.raises(FileNotFoundError, match="dvc repro train@empty"):
        read_generator(tmp_path / "empty")


def test_run_marker_is_one_json_line_and_finishing_keeps_its_fields(tmp_path):
    marker = tmp_path / "runs" / run_marker_name("dcgan-seed1")
    assert marker.name == "dcgan-seed1.run.json" and read_run_marker(marker) is None
    write_run_marker(marker, {"run_id": "r", "config_hash": "h"})
    assert marker.read_text() == '{"run_id": "r", "config_hash": "h"}\n'
    finish_run_marker(marker)
    assert read_run_marker(marker) == {"run_id": "r", "config_hash": "h", "finished": True}
