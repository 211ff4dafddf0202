"""What the divergence watch costs the default DCGAN (issue 23): samples/s of the family's real train
steps with and without ``DivergenceWatch.step`` on each step's scalars, in alternating blocks (so
that drift of a shared machine hits both alike), plus the watch's own cost per call measured alone.

In process, no Ray; the variant's own threads (cpus_per_worker). Results: docs/reliability.md.

    python bench/divergence_check.py --rounds 3
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from pipeline.config import load_params  # noqa: E402
from pipeline.data import load_prepared, prepare  # noqa: E402
from pipeline.families import family_for  # noqa: E402
from pipeline.families.base import StepEnv  # noqa: E402
from pipeline.train.health import CollapseMonitor, DivergenceWatch, nonfinite_weights, real_reference  # noqa: E402
from pipeline.train.sharding import training_batches  # noqa: E402
from pipeline.train.session import LocalSession  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--variant", default="dcgan")
    parser.add_argument("--rounds", type=int, default=3, help="alternating blocks of one epoch each")
    args = parser.parse_args()
    params = load_params(args.params)
    cfg = params.variant(args.variant)
    torch.set_num_threads(cfg.cpus_per_worker)
    work = Path(tempfile.mkdtemp(prefix="divergence-bench-"))
    prepare(params.datasets[cfg.dataset], work / "data.npz")
    data = load_prepared(work / "data.npz")
    family = family_for(cfg)
    torch.manual_seed(cfg.seed)
    nets = family.build(data.spec)
    opts = family.optimizers(nets)
    session = LocalSession(work / "session")
    batches = training_batches(data, cfg.batch_size, 0, 1, cfg.seed, torch.device("cpu"), session)
    env = StepEnv(step=0, device=torch.device("cpu"), sync_grads=lambda params: None)
    watch, seconds, samples, last = DivergenceWatch(cfg.divergence), {False: 0.0, True: 0.0}, {False: 0, True: 0}, {}
    for block in range(2 * args.rounds + 1):  # block 0 warms up (not counted)
        checked = block % 2 == 0
        started = time.perf_counter()
        for batch in batches.epoch(block):
            last = family.train_step(nets, opts, batch, env)
            env.step += 1
            if checked:
                watch.step(last, env.step, block + 1)
        if block:
            seconds[checked] += time.perf_counter() - started
            samples[checked] += batches.steps_per_epoch() * cfg.batch_size
    per_step_us = per_call_us(lambda: watch.step(last, 1, 1), 100_000)
    per_report_us = per_call_us(lambda: nonfinite_weights(nets), 100)
    monitor = CollapseMonitor(real_reference(data.x_test, 256))
    grid = real_reference(data.x_train, 64)  # the 64 samples of the epoch's grid
    health_us = per_call_us(lambda: monitor.measure(grid), 100)
    step_ms = seconds[False] / (samples[False] / cfg.batch_size) * 1e3
    plain, checked = samples[False] / seconds[False], samples[True] / seconds[True]
    print(f"{args.variant} ({cfg.cpus_per_worker} threads, batch {cfg.batch_size}, {args.rounds} rounds of one epoch "
          f"each): without the watch {plain:.1f} samples/s, with it {checked:.1f} samples/s "
          f"({100 * (checked / plain - 1):+.1f}%, timing noise of this machine included)")
    print(f"alone: the step check {per_step_us:.2f} us = {per_step_us / 1e3 / step_ms:.1e} of a {step_ms:.1f} ms step; "
          f"per report (epoch): weights check {per_report_us / 1e3:.2f} ms, health/* of 64 samples "
          f"{health_us / 1e3:.2f} ms")


def per_call_us(fn, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls * 1e6


if __name__ == "__main__":
    main()
