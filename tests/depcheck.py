"""The DVC code-dependency check: every module a stage can load must be one of its ``deps``.

``dvc repro`` decides what is up to date from the hashes of a stage's ``deps``. A module the stage
imports but does not list is invisible to it: change that module and ``dvc repro`` calls stale
results up to date. This module computes, for each stage of ``dvc.yaml``, the *import closure* of
its script: every file under ``pipeline/`` and ``stages/`` reachable through ``import`` statements,
including imports inside functions (lazy imports), a package's ``__init__.py`` on the way to
its submodules, and every module of a package whose ``__init__.py`` discovers its submodules with
``pkgutil.iter_modules(__path__)`` (the family registry). It then compares the closure with the stage's deps:

- **missing**: a closure file that no dep line covers (a file line, or a directory line above it);
- **unneeded**: a code dep line (under ``pipeline/`` or ``stages/``) that covers no closure file;
- **overlapping**: a code dep line already covered by another line (deleting it would change
  nothing, so it hides which line is the one that matters).

With none of the three, deleting any code dep line leaves a closure file uncovered, which the
check reports. The runtime side (which modules the stage's processes, Ray workers included,
really loaded) is recorded by ``tests/importlog/sitecustomize.py`` and compared in the ``dvc repro``
integration test.

Run ``python tests/depcheck.py`` for a per-stage report with the dep lines to paste,
``--write`` to write them into dvc.yaml, ``--table`` for docs/reproducibility.md's table.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CODE_ROOTS = ("pipeline", "stages")


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """The repository file of a dotted module name (``pipeline.data`` -> pipeline/data/__init__.py;
    ``_common`` -> stages/_common.py, as the stage scripts import it), or None if not ours."""
    parts = name.split(".")
    if parts[0] == "pipeline":
        base = root.joinpath(*parts)
    elif len(parts) == 1 and (root / "stages" / f"{name}.py").is_file():
        base = root / "stages" / name
    else:
        return None
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return base.with_suffix(".py") if base.with_suffix(".py").is_file() else None


def _package_of(path: Path, root: Path) -> str:
    """Dotted package a file belongs to, for resolving relative imports."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts if parts[-1] == "__init__" else parts[:-1])


def imported_names(path: Path, root: Path = ROOT) -> set[str]:
    """Every dotted name an ``import`` anywhere in ``path`` may load, with the parent packages that
    Python imports first (``import a.b.c`` runs a/__init__, a/b/__init__, then a/b/c)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = _package_of(path, root).split(".")
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            # `from a import b` loads a, and a.b when b is a submodule rather than a name in a.
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            names.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    if path.name == "__init__.py" and discovers_submodules(path):
        package = ".".join(path.parent.relative_to(root).parts)
        names.update(f"{package}.{module.stem}" for module in path.parent.glob("*.py") if module.name != "__init__.py")
    return names


def discovers_submodules(path: Path) -> bool:
    """Whether a package's ``__init__.py`` imports all its submodules at run time: it calls
    ``pkgutil.iter_modules(__path__)`` (a name-based import the ``import`` statements do not show)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "iter_modules"
                and node.args and isinstance(node.args[0], ast.Name) and node.args[0].id == "__path__"):
            return True
    return False


def import_closure(script: Path, root: Path = ROOT) -> set[Path]:
    """``script`` and every repository file reachable from it through imports."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo.extend(f for f in map(lambda n: module_file(n, root), imported_names(path, root)) if f)
    return seen


@dataclass
class StageCheck:
    """One dvc.yaml stage's code deps against its script's import closure (paths relative to ROOT)."""

    stage: str
    script: str
    closure: set[str]
    deps: list[str]
    missing: list[str] = field(default_factory=list)
    unneeded: list[str] = field(default_factory=list)
    overlapping: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unneeded or self.overlapping)


def covers(dep: str, path: str) -> bool:
    """A dep line covers a file if it names the file or a directory above it."""
    dep = dep.rstrip("/")
    return path == dep or path.startswith(dep + "/")


def is_code(dep: str) -> bool:
    return dep.split("/")[0] in CODE_ROOTS


def stage_definitions(root: Path = ROOT) -> dict[str, dict]:
    """``dvc.yaml``'s stages (a ``foreach`` stage by its template: its ``do`` block)."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    return {name: (body.get("do", body)) for name, body in stages.items()}


def stage_script(definition: dict) -> str:
    """The stage's Python entry point, from its ``cmd`` (``python stages/<x>.py ...``)."""
    found = re.search(r"python3?\s+(\S+\.py)", definition["cmd"])
    assert found, f"stage cmd does not run a python script: {definition['cmd']!r}"
    return found.group(1)


@lru_cache(maxsize=None)
def script_closure(script: str, root: Path = ROOT) -> frozenset[str]:
    """The import closure of a stage script, as paths relative to ``root``."""
    return frozenset(str(p.relative_to(root)) for p in import_closure(root / script, root))


def check_stage(name: str, definition: dict, root: Path = ROOT) -> StageCheck:
    script = stage_script(definition)
    closure = set(script_closure(script, root))
    deps = [d for d in definition.get("deps", []) if isinstance(d, str)]
    code = [d for d in deps if is_code(d)]
    result = StageCheck(name, script, closure, deps)
    result.missing = sorted(p for p in closure if not any(covers(d, p) for d in deps))
    result.unneeded = [d for d in code if not any(covers(d, p) for p in closure)]
    result.overlapping = [d for d in code if any(o != d and covers(o, d) for o in code)]
    return result


# Data a stage reads that its cmd does not name: prepare reads the user's image folders, which
# params.yaml points to under data/raw/ (README, "your own image folders").
EXTRA_DATA_DEPS = {"prepare": ["data/raw"]}
OUTPUT_KEYS = ("outs", "metrics", "plots")


NAME_FLAGS = ("--variant", "--dataset")  # the cmd's other --flags take paths


def cmd_paths(definition: dict) -> list[str]:
    """The path arguments of a stage's cmd (``--flag some/path``)."""
    args = definition["cmd"].split()
    return [value for flag, value in zip(args, args[1:]) if flag.startswith("--") and flag not in NAME_FLAGS]


def stage_outputs(definition: dict) -> list[str]:
    """Every path a stage writes: its outs, metrics and plots (entries may carry options)."""
    entries = [e for key in OUTPUT_KEYS for e in definition.get(key, [])]
    return [e if isinstance(e, str) else next(iter(e)) for e in entries]


def data_dep_problems(name: str, definition: dict) -> list[str]:
    """Non-code deps against what the stage reads: each path its cmd reads (not an output) must be a
    dep, and each non-code dep must be such a path or one of EXTRA_DATA_DEPS."""
    deps = [d for d in definition.get("deps", []) if isinstance(d, str) and not is_code(d)]
    outputs = stage_outputs(definition)
    reads = [p for p in cmd_paths(definition) if not any(covers(p, out) for out in outputs)]
    # A prepared dataset is read through its sidecar, which may point to the train split's shards.
    reads += [p[:-len(".npz")] + ".shards" for p in reads if p.startswith("data/prepared/") and p.endswith(".npz")]
    expected = reads + EXTRA_DATA_DEPS.get(name, [])
    return ([f"{name}: reads {p} (its cmd names it, or the prepared .npz it names) but does not list it in deps" for p in expected if p not in deps]
            + [f"{name}: dep {d} is neither read by its cmd nor an extra data dep" for d in deps
               if d not in expected])


def check_all(root: Path = ROOT) -> list[StageCheck]:
    return [check_stage(name, body, root) for name, body in stage_definitions(root).items()]


def suggested_deps(closure: set[str], root: Path = ROOT) -> list[str]:
    """The closure as dep lines: a directory line where the closure holds every ``.py`` file of that
    directory (and of its subdirectories), file lines otherwise."""
    lines: list[str] = []

    def whole(directory: Path) -> bool:
        files = [str(p.relative_to(root)) for p in directory.rglob("*.py") if "__pycache__" not in p.parts]
        return bool(files) and all(f in closure for f in files)

    for path in sorted(closure):
        parents = [p for p in Path(path).parents if str(p) not in (".", *CODE_ROOTS)]
        top = next((p for p in reversed(parents) if whole(root / p)), None)
        line = str(top) if top else path
        if line not in lines:
            lines.append(line)
    return lines


def rerun_table(root: Path = ROOT) -> str:
    """Markdown: for each code file (a directory where all its files agree), the stage kinds whose
    deps cover it, i.e. what `dvc repro` re-runs after a change to it."""
    definitions = stage_definitions(root)
    files = sorted(str(p.relative_to(root)) for sub in CODE_ROOTS for p in (root / sub).rglob("*.py")
                   if "__pycache__" not in p.parts)
    reruns = {f: tuple(n for n, d in definitions.items() if any(covers(x, f) for x in d.get("deps", [])
                                                                  if isinstance(x, str))) for f in files}
    groups: dict[tuple[str, tuple[str, ...]], list[str]] = {}  # (folder, stages) -> file names
    for path in files:
        folder = str(Path(path).parent)
        groups.setdefault((folder, reruns[path]), []).append(Path(path).name)
    rows: dict[str, tuple[str, ...]] = {}
    for (folder, stages), names in groups.items():
        everything = len([k for k in groups if k[0] == folder]) == 1 and folder not in CODE_ROOTS
        if everything:
            rows[folder + "/"] = stages
        else:
            rows.update({f"{folder}/{name}": stages for name in names})
    lines = ["| code | re-runs |", "|---|---|"]
    lines += [f"| `{code}` | {', '.join(stages) or 'nothing (not used by a stage)'} |" for code, stages in rows.items()]
    return "\n".join(lines) + "\n"


def write_code_deps(root: Path = ROOT) -> None:
    """Rewrite each stage's code dep lines in dvc.yaml as :func:`suggested_deps` of its closure,
    in place of the old ones (comments, data deps and everything else are kept)."""
    results = {r.stage: r for r in check_all(root)}
    lines, stage, written = [], None, set()
    for line in (root / "dvc.yaml").read_text().split("\n"):
        header = re.match(r"^  (\w+):\s*$", line)
        stage = header.group(1) if header and header.group(1) in results else stage
        dep = re.match(r"^(\s+)- (pipeline|stages)(/\S*)?\s*$", line)
        if dep and stage:
            if stage not in written:
                written.add(stage)
                lines += [f"{dep.group(1)}- {d}" for d in suggested_deps(results[stage].closure, root)]
            continue
        lines.append(line)
    (root / "dvc.yaml").write_text("\n".join(lines))


def main() -> int:
    if sys.argv[1:] == ["--table"]:
        print(rerun_table(), end="")
        return 0
    if sys.argv[1:] == ["--write"]:
        write_code_deps()
        script_closure.cache_clear()
    failed = 0
    for result in check_all():
        status = "ok" if result.ok else "DRIFT"
        print(f"{result.stage} ({result.script}): {status}, {len(result.closure)} files in its import closure")
        for label in ("missing", "unneeded", "overlapping"):
            for item in getattr(result, label):
                print(f"  {label}: {item}")
        if not result.ok:
            failed += 1
            print("  suggested code deps:")
            for line in suggested_deps(result.closure):
                print(f"    - {line}")
    for name, definition in stage_definitions().items():
        for problem in data_dep_problems(name, definition):
            failed += 1
            print(f"DRIFT {problem}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
