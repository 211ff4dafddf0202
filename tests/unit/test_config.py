import re

import pytest
import yaml

from helpers import ROOT, run_train_stage, tiny_params
from pipeline.config import ConfigError, DcganConfig, config_hash, load_params, parse_params, variant_from_dict


def problems_of(raw) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_params(raw)
    return info.value.problems


def test_repository_params_are_valid():
    params = load_params(ROOT / "params.yaml")
    assert isinstance(params.variant("dcgan"), DcganConfig)
    assert params.datasets["mnist"].kind == "mnist" and params.datasets["mnist"].image_size == 32  # real MNIST
    assert {v.dataset for v in params.variants.values() if v.family != "gan"} == {"mnist"}
    digits = load_params(ROOT / "profiles" / "digits.yaml")  # the former default, for the docs' tables
    assert digits.datasets["digits"].image_size == 16 and digits.variant("dcgan").dataset == "digits"


def test_round_trip_through_dict_keeps_config_and_hash():
    cfg = parse_params(tiny_params()).variant("dcgan")
    again = variant_from_dict(cfg.model_dump(mode="json"))
    assert again == cfg
    assert config_hash(again) == config_hash(cfg)
    assert config_hash(parse_params(tiny_params(lr_g=1e-3)).variant("dcgan")) != config_hash(cfg)


@pytest.mark.parametrize("overrides, expected", [
    ({"lr_g": -0.1}, "variants.dcgan.lr_g = -0.1: Input should be greater than 0"),
    ({"family": "nope"}, "variants.dcgan.family = 'nope': unknown family; allowed: dcgan"),
    ({"dataset": "cifar"}, "variants.dcgan.dataset = 'cifar': unknown dataset; allowed: digits"),
    ({"num_workers": 0}, "variants.dcgan.num_workers = 0: Input should be greater than or equal to 1"),
    ({"loss": "lsgan"}, "variants.dcgan.loss = 'lsgan': Input should be 'nonsaturating', 'minimax', 'hinge' or 'wgan'"),
    ({"augment": ["flip"]}, "variants.dcgan.augment.0 = 'flip'"),
    ({"batch_size": 63, "num_workers": 2}, "variants.dcgan.batch_size = 63: must be a multiple of num_workers"),
    ({"lr": 0.1}, "variants.dcgan.lr: unknown key; allowed: augment, batch_size"),
    ({"ema_decay": 1.0}, "variants.dcgan.ema_decay = 1.0: Input should be less than 1"),
])
def test_each_bad_variant_value_is_named(overrides, expected):
    lines = problems_of(tiny_params(**overrides))
    assert any(expected in line for line in lines), lines


@pytest.mark.parametrize("size, expected", [
    (12, "datasets.digits.image_size = 12: must be a power of two"),
    (4, "datasets.digits.image_size = 4: Input should be greater than or equal to 8"),
])
def test_image_size_the_architecture_cannot_produce(size, expected):
    raw = tiny_params()
    raw["datasets"]["digits"]["image_size"] = size
    assert any(expected in line for line in problems_of(raw))


def test_every_problem_is_reported_at_once():
    raw = tiny_params(lr_g=-1, epochs=0)
    raw["datasets"]["digits"]["colour"] = True
    assert len(problems_of(raw)) == 3


def test_unknown_variant_name_lists_the_allowed_ones():
    with pytest.raises(ConfigError, match="variant 'gan' is not in params.yaml variants; allowed: dcgan"):
        parse_params(tiny_params()).variant("gan")


def test_stage_exits_2_with_one_line_per_problem_and_writes_nothing(tmp_path):
    raw = tiny_params(lr_d=-1, family="dcgan", num_workers=0)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    out = tmp_path / "models" / "dcgan"
    result = run_train_stage(tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == ["error: params.yaml: variants.dcgan.num_workers = 0: Input should be greater than or equal to 1",
                     "error: params.yaml: variants.dcgan.lr_d = -1: Input should be greater than 0"] or \
        sorted(lines) == sorted(["error: params.yaml: variants.dcgan.num_workers = 0: Input should be greater than or equal to 1",
                                 "error: params.yaml: variants.dcgan.lr_d = -1: Input should be greater than 0"])
    assert not out.exists() and not (tmp_path / "ray").exists() and not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize("path", ["params.yaml", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "profiles").glob("*.yaml"))])
def test_params_and_every_profile_load_and_name_what_dvc_yaml_iterates(path):
    """`make run PROFILE=x` runs the profile's params (an overlay, resolved) in place of params.yaml:
    they must validate, and define every mapping a `foreach` of dvc.yaml expands (DVC refuses to
    parse the graph otherwise)."""
    from pipeline.profiles import is_overlay, resolve

    load_params(ROOT / path)
    iterated = set(re.findall(r"foreach: \$\{(\w+)\}", (ROOT / "dvc.yaml").read_text()))
    assert iterated == {"datasets", "evaluators", "variants", "tune"}
    raw = yaml.safe_load((ROOT / path).read_text())
    raw = resolve(raw, ROOT / path) if is_overlay(raw) else raw
    assert all(isinstance(raw.get(key), dict) for key in iterated), (path, iterated - set(raw))
