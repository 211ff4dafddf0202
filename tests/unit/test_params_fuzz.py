"""Params fuzzing: hostile mutations of the repository's params.yaml through the stages' own entry point.

Every mutation (a value of another type or out of range, ``.inf``/``.nan``, seeds of 2**32 and more,
a batch larger than the dataset, a missing or unknown key, a shared node written as a YAML anchor
and alias, a raw YAML token or a stray character in the text) must either validate or exit 2 with
one ``error: ...`` line per problem, before Ray starts or an MLflow run exists. A traceback fails.

The in-process runs call ``stages/_common.params_or_exit`` (what every stage calls first); one
subprocess runs ``stages/train.py`` itself. Hypothesis is derandomized (the same examples on every
run) and bounded; the figures are printed (``pytest -s``) and recorded in docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
from collections import Counter
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from _common import params_or_exit
from helpers import ROOT, run_train_stage
from pipeline.config import Params, load_params
from pipeline.dataset_schemas import DIGITS_IMAGES, MNIST_IMAGES

BASE = yaml.safe_load((ROOT / "params.yaml").read_text())
EXAMPLES = 400


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of the params tree (mappings and lists), the root excluded."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    paths = []
    for key, child in items:
        paths.append(prefix + (key,))
        paths += _paths(child, prefix + (key,))
    return paths


PATHS = _paths(BASE)


def _get(tree: Any, path: tuple) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def _parent(tree: Any, path: tuple) -> tuple[Any, Any] | None:
    """(container, key) of ``path`` in ``tree`` if it still exists after earlier mutations."""
    try:
        parent = _get(tree, path[:-1])
        if isinstance(parent, dict) and path[-1] in parent or isinstance(parent, list) and path[-1] < len(parent):
            return parent, path[-1]
    except (KeyError, IndexError, TypeError):
        pass
    return None


MAPPINGS = [p for p in [(), *PATHS] if isinstance(_get(BASE, p), dict)]

# Values that slipped through or broke the validation before, and the edges of every range.
SPECIAL = [math.inf, -math.inf, math.nan, 2**32 - 1, 2**32, 2**63, 2**64, 2**64 + 1, -1, 0, 1, 1e308, -0.0,
           DIGITS_IMAGES, MNIST_IMAGES, MNIST_IMAGES * 4 // 5 + 2, 20_002, 10**9, "", "nan", "inf", "1e999",
           True, False, None, [], {}, [1, 2], ["x"], {"kind": "digits"}, "digits", "mnist", "dcgan"]
VALUES = st.one_of(
    st.sampled_from(SPECIAL),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.sampled_from(["kind", "seed", "x", "family"]), st.integers(-2, 5), max_size=2),
)
KEYS = st.one_of(st.sampled_from(["colour", "seeds", "lr", "kind", "family", "base", "1"]), st.text(max_size=6),
                 st.integers(-2, 2), st.none())
# Raw YAML for a scalar: what yaml.safe_dump never writes but a person (or an attacker) can.
TOKENS = [".inf", "-.inf", ".NaN", "1" * 5000, "0x10", "0o17", "1_000", "1e999", "~", "*nowhere", "&a [*a]",
          "!!python/object/apply:os.system [echo hi]", "!!binary aGk=", "{", "[1, 2", "'unterminated", "yes",
          "2001-01-01", "!!float 'x'", "\t3", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"]

MUTATION = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(PATHS), VALUES),
    st.tuples(st.just("special"), st.sampled_from(PATHS), st.sampled_from(SPECIAL)),
    st.tuples(st.just("delete"), st.sampled_from(PATHS), st.none()),
    st.tuples(st.just("add"), st.sampled_from(MAPPINGS), st.tuples(KEYS, VALUES)),
    st.tuples(st.just("alias"), st.sampled_from(PATHS), st.sampled_from(PATHS)),
)
TEXT_EDIT = st.one_of(
    st.none(),
    st.tuples(st.just("token"), st.integers(0, 10_000), st.sampled_from(TOKENS)),
    st.tuples(st.just("char"), st.integers(0, 10_000), st.characters(codec="utf-8")),
)


def _apply(tree: dict, mutation: tuple) -> None:
    kind, path, arg = mutation
    if kind == "add":
        try:
            target = _get(tree, path)
        except (KeyError, IndexError, TypeError):
            return
        if isinstance(target, dict):
            target[arg[0]] = arg[1]
        return
    found = _parent(tree, path)
    if found is None:
        return
    parent, key = found
    if kind in ("set", "special"):
        parent[key] = arg
    elif kind == "delete":
        del parent[key]
    elif kind == "alias":  # the same object twice: yaml.safe_dump writes an &anchor and an *alias
        source = _parent(tree, arg)
        if source is not None and not _get(tree, arg) is parent:
            parent[key] = source[0][source[1]]


def _edit_text(text: str, edit: tuple | None) -> str:
    """A raw token for the value of one ``key: value`` line, or one character inserted anywhere."""
    if edit is None:
        return text
    kind, where, arg = edit
    if kind == "char":
        at = where % (len(text) + 1)
        return text[:at] + arg + text[at:]
    lines = text.split("\n")
    candidates = [i for i, line in enumerate(lines) if ": " in line]
    i = candidates[where % len(candidates)]
    lines[i] = lines[i].split(": ", 1)[0] + ": " + arg
    return "\n".join(lines)


def _dump(tree: dict) -> str:
    try:
        return yaml.safe_dump(tree, sort_keys=False, allow_unicode=True)
    except (yaml.YAMLError, ValueError):  # a value yaml cannot write (e.g. a key it cannot represent)
        return yaml.safe_dump(BASE, sort_keys=False)


FIGURES: Counter = Counter()
TRACEBACKS: list[str] = []


def _validate(path) -> tuple[int, list[str], Params | None]:
    """``params_or_exit`` as a stage runs it: (exit code, stderr lines, params if accepted)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            params = params_or_exit(str(path))
        except SystemExit as stop:
            return stop.code, err.getvalue().splitlines(), None
    return 0, err.getvalue().splitlines(), params


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(mutations=st.lists(MUTATION, min_size=1, max_size=4), edit=TEXT_EDIT)
def _fuzz(tmp_dir, mutations: list[tuple], edit: tuple | None) -> None:
    tree = copy.deepcopy(BASE)
    for mutation in mutations:
        _apply(tree, mutation)
    text = _edit_text(_dump(tree), edit)
    path = tmp_dir / "params.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    FIGURES["tried"] += 1
    try:
        code, lines, params = _validate(path)
    except BaseException as err:  # noqa: BLE001 - any escape is the failure this test counts
        TRACEBACKS.append(f"{type(err).__name__}: {err} <- {mutations} {edit}")
        FIGURES["tracebacks"] += 1
        return
    if code == 0:
        assert isinstance(params, Params) and not lines
        FIGURES["accepted"] += 1
    else:
        assert code == 2 and lines, (code, lines)
        assert all(line.startswith("error: ") and line.strip() == line for line in lines), lines
        FIGURES["refused"] += 1
        FIGURES["problems"] += len(lines)


@pytest.mark.slow
def test_fuzzed_params_validate_or_exit_2_with_one_line_per_problem(tmp_path, capsys):
    FIGURES.clear()
    TRACEBACKS.clear()
    _fuzz(tmp_path)
    with capsys.disabled():
        print(f"\nparams fuzzing: {dict(FIGURES)}")
    assert not TRACEBACKS, "\n".join(TRACEBACKS[:5])
    assert FIGURES["tried"] >= EXAMPLES and FIGURES["tracebacks"] == 0
    # Both outcomes are exercised: a fuzzer that only ever breaks the file tests nothing.
    assert FIGURES["accepted"] >= EXAMPLES // 20 and FIGURES["refused"] >= EXAMPLES // 2, dict(FIGURES)


@pytest.mark.parametrize("key, value, line", [
    ("lr_g", math.inf, "variants.dcgan.lr_g = inf: Input should be a finite number"),
    ("lr_d", math.nan, "variants.dcgan.lr_d = nan: Input should be a finite number"),
    ("seed", 2**64, "variants.dcgan.seed = 18446744073709551616: Input should be less than or equal to 4294967295"),
    ("seed", 2**32, "variants.dcgan.seed = 4294967296: Input should be less than or equal to 4294967295"),
    ("batch_size", 4002, "variants.dcgan.batch_size = 4002: larger than the 4000 training examples of dataset "
                         "'mnist'; allowed: 2 .. 4000"),
])
def test_what_slipped_through_is_refused_with_one_line(key, value, line):
    raw = copy.deepcopy(BASE)
    raw["variants"]["dcgan"][key] = value
    from pipeline.config import ConfigError, parse_params

    with pytest.raises(ConfigError) as info:
        parse_params(raw)
    assert info.value.problems == [f"params.yaml: {line}"]


@pytest.mark.parametrize("text, problem", [
    ("datasets: {r: &b {kind: ring8, n_train: 50}, s: *b}\nvariants: {}\n", "datasets.s.n_train = 50"),
    ("datasets: {r: {kind: ring8}}\nvariants: {v: {<<: *missing}}\n", "not valid YAML"),
    ("datasets: &a {r: *a}\nvariants: {}\n", "datasets.r.kind = None"),  # a mapping that holds itself
    ("datasets: {r: {kind: ring8}}\nevaluators: {r: {}}\nvariants:\n  v: &v {family: gan, dataset: r, epochs: 1, "
     "batch_size: 64}\n  w: {<<: *v, seed: 18446744073709551616}\n", "variants.w.seed = 18446744073709551616"),
    ("a: &a [1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
     "d: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n", "unknown key"),  # aliases are shared, not expanded
])
def test_yaml_anchors_and_aliases_validate_or_give_one_line(tmp_path, text, problem):
    (tmp_path / "params.yaml").write_text(text)
    code, lines, _ = _validate(tmp_path / "params.yaml")
    assert code == 2 and any(problem in line for line in lines), lines
    assert all(line.startswith("error: ") for line in lines)


def test_the_train_stage_exits_2_before_ray_or_mlflow(tmp_path):
    """The stage as DVC runs it, on params with the three faults that slipped through (in two variants:
    a variant's batch is checked once its keys are valid): exit 2, one line each, no Ray started (it would leave its session dir), no MLflow store, no output."""
    raw = copy.deepcopy(BASE)
    raw["variants"]["dcgan"].update(lr_g=math.inf, seed=2**64)
    raw["variants"]["cgan"].update(batch_size=4096)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    result = run_train_stage(tmp_path, env={"PATH": "/usr/bin:/bin", "RAY_TMPDIR": str(tmp_path / "raytmp"),
                                            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"})
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert sorted(result.stderr.strip().splitlines()) == [
        "error: params.yaml: variants.cgan.batch_size = 4096: larger than the 4000 training examples of dataset "
        "'mnist'; allowed: 2 .. 4000",
        "error: params.yaml: variants.dcgan.lr_g = inf: Input should be a finite number",
        "error: params.yaml: variants.dcgan.seed = 18446744073709551616: Input should be less than or equal to "
        "4294967295"]
    for left in ("mlflow.db", "ray", "raytmp", "models", "p.csv"):
        assert not (tmp_path / left).exists(), left


def test_a_batch_larger_than_the_prepared_split_is_refused_before_ray():
    """Where only ``prepare`` knows the split's size (the user's files), the train stage checks the
    batch against the prepared ``n_train`` (the smaller domain of two) before Ray starts."""
    from pipeline.config import ConfigError, parse_params
    from pipeline.train.driver import check_runtime

    raw = copy.deepcopy(BASE)
    raw["datasets"]["pics"] = {"kind": "image_folder", "path": "data/raw/pics", "channels": 1}
    raw["evaluators"]["pics"] = {}
    raw["variants"]["dcgan"]["dataset"] = "pics"
    params = parse_params(raw)  # the size is not known yet: valid
    check_runtime(params, "dcgan", None, 64)
    with pytest.raises(ConfigError) as info:
        check_runtime(params, "dcgan", None, 50)
    assert info.value.problems == ["params.yaml: variants.dcgan.batch_size = 64: larger than the 50 training "
                                   "examples of the prepared 'pics'; allowed: 2 .. 50"]


def test_the_dataset_sizes_the_params_assume_are_the_packages():
    """DIGITS_IMAGES and MNIST_IMAGES fix the train split sizes the batch check uses before prepare."""
    import gzip

    from sklearn.datasets import load_digits

    from pipeline.data.mnist import mnist_file

    assert len(load_digits().target) == DIGITS_IMAGES
    with gzip.open(mnist_file(), "rt") as f:
        assert sum(1 for _ in f) == MNIST_IMAGES
    assert load_params(ROOT / "params.yaml").datasets["mnist"].train_size() == 4000
