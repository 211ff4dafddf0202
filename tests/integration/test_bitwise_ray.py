"""The bit-reproducible mode reaches Ray Train workers through the runtime env the launcher builds.

The driver runs with other kernels (``ONEDNN_MAX_CPU_ISA=AVX`` and ATen's DEFAULT, as in
tests/integration/test_bitwise_processes.py) and does not pin them itself; with ``GAN_LAB_BITWISE=1`` its Ray worker
must start pinned (its checkpoint's environment record says so) and train the same bits as the
mode's in-process run on this machine's own kernels. Its own embedded Ray, in a subprocess: the
session's shared Ray was started without the mode. Without the mode the same driver's worker
receives the other kernels' settings and trains other bits (checked by hand). About 30 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import ROOT
from pipeline import numerics

pytestmark = pytest.mark.integration


def probe(prepared_digits, work, extra: dict[str, str], *flags: str) -> dict:
    base = {k: v for k, v in os.environ.items()
            if k not in (*numerics.PINNED_ENV, numerics.BITWISE_ENV, "RAY_ADDRESS")}
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "bitwise_probe.py"), str(prepared_digits),
                          str(work), *flags], env={**base, **extra}, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_ray_worker_starts_pinned_and_trains_the_in_process_bits(prepared_digits, tmp_path):
    on = {numerics.BITWISE_ENV: "1"}
    other = {"ONEDNN_MAX_CPU_ISA": "AVX", "ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "AUTO"}
    ray_run = probe(prepared_digits, tmp_path / "ray", {**other, **on}, "--ray")
    local = probe(prepared_digits, tmp_path / "local", {"ONEDNN_MAX_CPU_ISA": "AVX2", **on})
    assert {k: ray_run["worker_env"][k] for k in numerics.PINNED_ENV} == numerics.PINNED_ENV
    assert ray_run["worker_torch"]["deterministic"] and ray_run["worker_torch"]["bitwise"]
    assert ray_run["train"] == local["train"], "the Ray worker trained other bits than the in-process loop"
