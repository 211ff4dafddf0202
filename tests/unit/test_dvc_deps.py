"""dvc.yaml's deps against the code: a stage whose deps miss a module it imports would be called
up to date by `dvc repro` after that module changed (tests/depcheck.py says how it is checked;
the runtime side is in tests/integration/test_dvc_pipeline.py)."""

from __future__ import annotations

import pytest
from depcheck import ROOT, check_all, check_stage, data_dep_problems, import_closure, stage_definitions, suggested_deps

STAGE_KINDS = ("prepare", "evaluator", "train", "evaluate", "tune", "report")


def describe(results) -> str:
    lines = []
    for r in results:
        lines += [f"{r.stage}: {label} {item}" for label in ("missing", "unneeded", "overlapping")
                  for item in getattr(r, label)]
        if not r.ok:
            lines.append(f"{r.stage}: suggested code deps: {suggested_deps(r.closure)}")
    return "\n".join(lines) + "\n(`python tests/depcheck.py --write` writes them into dvc.yaml)"


def test_every_stage_kind_is_checked():
    assert set(stage_definitions()) == set(STAGE_KINDS)


def test_code_deps_equal_each_stage_scripts_import_closure():
    results = check_all()
    assert all(r.ok for r in results), describe(results)


def test_data_deps_are_what_each_stage_cmd_reads():
    problems = [p for name, body in stage_definitions().items() for p in data_dep_problems(name, body)]
    assert not problems, "\n".join(problems)


def test_closure_follows_lazy_imports_and_parent_packages():
    closure = {str(p.relative_to(ROOT)) for p in import_closure(ROOT / "stages" / "train.py")}
    # The driver imports mlflow's wrapper and the Ray launcher inside functions.
    assert {"pipeline/__init__.py", "pipeline/train/__init__.py", "pipeline/tracking.py",
            "stages/_common.py", "pipeline/train/launcher.py"} <= closure
    assert "pipeline/report.py" not in closure and "stages/evaluate.py" not in closure
    # The family registry imports every module of its package by name (no import statement names
    # them): the closure still holds each family.
    families = {f"pipeline/families/{p.name}" for p in (ROOT / "pipeline" / "families").glob("*.py")}
    assert families <= closure
    # The loop receives a tuning trial's objective; training alone never loads tuning or evaluation.
    assert not {"pipeline/objective.py", "pipeline/evaluation.py", "pipeline/tune/trials.py"} & closure


@pytest.mark.parametrize("stage", STAGE_KINDS)
def test_deleting_any_dependency_line_is_caught(stage):
    """The check is tight: remove any one dep line of a stage and it reports drift."""
    body = stage_definitions()[stage]
    deps = list(body["deps"])
    for index, line in enumerate(deps):
        shortened = {**body, "deps": deps[:index] + deps[index + 1:]}
        code_ok = check_stage(stage, shortened).ok
        data_ok = not data_dep_problems(stage, shortened)
        assert not (code_ok and data_ok), f"{stage}: deleting dep {line!r} went unnoticed"


def test_docs_say_what_a_code_change_reruns():
    from depcheck import rerun_table

    assert rerun_table() in (ROOT / "docs" / "reproducibility.md").read_text(), (
        "docs/reproducibility.md is out of date: paste the output of `python tests/depcheck.py --table`")
