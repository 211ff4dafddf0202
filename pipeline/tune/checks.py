"""Checks of a tune entry that need the models, run by the stage before Ray starts."""

from __future__ import annotations

from pipeline.config import Params
from pipeline.data import DataSpec
from pipeline.families import family_for
from pipeline.search_space import parse_dimension


def pbt_shape_problems(params: Params, name: str, spec: DataSpec) -> list[str]:
    """PBT copies one trial's weights into another (exploit), so its space may only hold keys that
    leave every network's parameter shapes alone (learning rates, betas, loss weights; not widths)."""
    tune = params.tune[name]
    if tune.scheduler != "pbt":
        return []
    base = params.variant(name)
    shapes = _shapes(base, spec)
    problems = []
    for key, text in tune.space.items():
        for value in parse_dimension(text).candidates():
            if _shapes(base.model_copy(update={key: value}), spec) != shapes:
                problems.append(f"params.yaml: tune.{name}.space.{key} = {text!r}: {key} = {value!r} changes the "
                                f"networks' shapes, so a PBT exploit could not load another trial's weights; "
                                f"search it with scheduler asha or fifo")
                break
    return problems


def _shapes(cfg, spec: DataSpec) -> dict[str, list[tuple]]:
    nets = family_for(cfg).build(spec)
    return {name: [tuple(t.shape) for t in net.state_dict().values()] for name, net in nets.items()}
