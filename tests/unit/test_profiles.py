"""Profiles are overlays on params.yaml (pipeline/profiles.py): what they resolve to, and the
`dvc exp run -S` overrides `make run PROFILE=...` passes, applied by DVC's own Hydra code."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from pipeline.config import ConfigError, load_params, parse_params
from pipeline.profiles import ProfileError, dvc_overrides, experiment_command, hydra_value, is_overlay, resolve

ROOT = Path(__file__).resolve().parents[2]
PROFILES = sorted(p.stem for p in (ROOT / "profiles").glob("*.yaml"))


@pytest.mark.parametrize("name", PROFILES)
def test_dvc_applies_the_overrides_to_exactly_the_resolved_profile(tmp_path, name):
    from dvc.utils.hydra import apply_overrides

    path = ROOT / "profiles" / f"{name}.yaml"
    raw = yaml.safe_load(path.read_text())
    params = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params)
    apply_overrides(params, dvc_overrides(raw, path))
    applied = yaml.safe_load(params.read_text())
    assert applied == resolve(raw, path)
    assert parse_params(applied) == load_params(path)  # and it validates


@pytest.mark.parametrize("name", PROFILES)
def test_a_profile_holds_only_what_it_changes(name):
    path = ROOT / "profiles" / f"{name}.yaml"
    raw = yaml.safe_load(path.read_text())
    base_path = path.parent / raw["base"]
    base = yaml.safe_load(base_path.read_text())
    base = resolve(base, base_path) if is_overlay(base) else base  # a profile on a profile

    def unchanged(changes: dict, node: dict, where: str) -> list[str]:
        found = []
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(node.get(key), dict):
                found += unchanged(value, node[key], f"{where}{key}.")
            elif node.get(key, object()) == value:
                found.append(where + key)
        return found

    assert unchanged(raw["set"], base, "") == []


def test_resolve_drops_then_merges(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"variants": {"a": {"epochs": 1, "lr": 0.1}, "b": {}}}))
    overlay = tmp_path / "profiles" / "p.yaml"
    overlay.parent.mkdir()
    raw = {"base": "../params.yaml", "drop": ["variants.b"], "set": {"variants": {"a": {"epochs": 5}, "c": {"x": 1}}}}
    assert resolve(raw, overlay) == {"variants": {"a": {"epochs": 5, "lr": 0.1}, "c": {"x": 1}}}
    assert dvc_overrides(raw, overlay) == ["~variants.b", "++variants.a.epochs=5", "++variants.c.x=1"]


def test_a_profile_on_a_profile_applies_both_in_order(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"variants": {"a": {"epochs": 1, "lr": 0.1}, "b": {}}}))
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "base.yaml").write_text(yaml.safe_dump(
        {"base": "../params.yaml", "drop": ["variants.b"], "set": {"variants": {"a": {"epochs": 5}}}}))
    child = tmp_path / "profiles" / "child.yaml"
    raw = {"base": "base.yaml", "drop": ["variants.a.lr"], "set": {"variants": {"a": {"epochs": 7}}}}
    assert resolve(raw, child) == {"variants": {"a": {"epochs": 7}}}
    assert dvc_overrides(raw, child) == ["~variants.b", "++variants.a.epochs=5", "~variants.a.lr",
                                         "++variants.a.epochs=7"]
    child.write_text(yaml.safe_dump({"base": "child.yaml"}))  # a cycle
    with pytest.raises(ProfileError, match="more than 8 deep"):
        resolve({"base": "child.yaml"}, child)


def test_hydra_values_quote_strings():
    assert hydra_value("loguniform(1e-4, 3e-3)") == "'loguniform(1e-4, 3e-3)'"
    assert hydra_value(["translation", "cutout"]) == "['translation', 'cutout']"
    assert hydra_value(None) == "null" and hydra_value(True) == "true" and hydra_value(0.001) == "0.001"


def test_bad_profiles_are_one_line_errors(tmp_path):
    (tmp_path / "params.yaml").write_text("variants: {}\n")
    overlay = tmp_path / "p.yaml"
    overlay.write_text("base: params.yaml\ndrop: [variants.nope]\n")
    with pytest.raises(ConfigError, match="drop 'variants.nope': no such key"):
        load_params(overlay)
    overlay.write_text("base: params.yaml\nsett: {}\n")
    with pytest.raises(ConfigError, match="unknown key\\(s\\) sett"):
        load_params(overlay)
    with pytest.raises(ProfileError, match="PROFILE=nope: no profiles/nope.yaml; allowed: .*stylegan"):
        experiment_command("nope", ROOT, "x")
