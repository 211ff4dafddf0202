"""The bit-reproducible mode (pipeline.numerics): two processes that pick different CPU kernels,
as an AVX2 and an AVX-512/AMX machine do, must give identical evaluator and training bits with
``GAN_LAB_BITWISE=1``.

One machine stands in for two: process "other" is told by the libraries' own switches to use other
kernels (oneDNN capped at AVX, ATen's DEFAULT instead of its AVX2 kernels, MKL's AUTO branch), the
way a Xeon with AVX-512 picks wider ones. Each process runs tests/bitwise_probe.py: 2 epochs of the
evaluator classifier (its weights and reference features) and 2 steps of the DCGAN through the real
per-worker loop, and prints their sha256.

Measured on this 2-core AMD EPYC (AVX2, no AVX-512): with the mode OFF the two processes differ in
both hashes (so this test can see a difference at all: asserted below); with the mode ON they are
identical. SSE41 instead of AVX differs as well but makes oneDNN's convolutions ~15x slower.
About 30 s (four processes, two at a time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

from helpers import ROOT
from pipeline import numerics

OTHER_KERNELS = {"ONEDNN_MAX_CPU_ISA": "AVX", "ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "AUTO"}
THIS_MACHINE = {"ONEDNN_MAX_CPU_ISA": "AVX2"}


def probe_all(prepared_digits, tmp_path, runs: dict[str, dict[str, str]]) -> dict[str, dict]:
    """Run the probe once per entry of ``runs`` (extra environment), two at a time; their outputs."""
    base = {k: v for k, v in os.environ.items() if k not in (*numerics.PINNED_ENV, numerics.BITWISE_ENV)}
    names, outputs = list(runs), {}
    for pair in (names[i:i + 2] for i in range(0, len(names), 2)):  # two cores: two at a time
        procs = {name: subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "bitwise_probe.py"), str(prepared_digits), str(tmp_path / name)],
            env={**base, **runs[name]}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in pair}
        for name, proc in procs.items():
            out, err = proc.communicate()
            assert proc.returncode == 0, f"{name} failed:\n{err[-3000:]}"
            outputs[name] = json.loads(out.strip().splitlines()[-1])
    return outputs


def test_mode_makes_different_kernels_agree_and_without_it_they_differ(prepared_digits, tmp_path):
    on = {numerics.BITWISE_ENV: "1"}
    out = probe_all(prepared_digits, tmp_path, {"on_other": {**OTHER_KERNELS, **on}, "on_this": {**THIS_MACHINE, **on},
                                                "off_other": OTHER_KERNELS, "off_this": THIS_MACHINE})
    assert out["on_other"]["deterministic"] and out["on_other"]["capability"] == "AVX2"
    for part in ("evaluator", "train"):
        assert out["on_other"][part] == out["on_this"][part], f"{part}: the mode did not make the kernels agree"
        assert out["off_other"][part] != out["off_this"][part], (
            f"{part}: same bits without the mode; the test no longer shows the kernels differ")


def test_switch_and_pinned_environment():
    for value, expected in (("1", True), ("true", True), ("0", False), ("", False)):
        assert numerics.bitwise_enabled({numerics.BITWISE_ENV: value}) is expected
    assert numerics.pinned_env({}) == {}
    pinned = numerics.pinned_env({numerics.BITWISE_ENV: "1"})
    assert pinned["ONEDNN_MAX_CPU_ISA"] == "AVX2" and pinned["ATEN_CPU_CAPABILITY"] == "avx2"
    assert numerics.stage_threads({}) == numerics.DEFAULT_THREADS
    assert numerics.stage_threads({numerics.THREADS_ENV: "4"}) == 4


def test_ray_workers_start_with_the_pinned_variables(monkeypatch):
    pytest.importorskip("ray")
    from pipeline.train.launcher import forwarded_env

    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    monkeypatch.delenv(numerics.BITWISE_ENV, raising=False)
    assert forwarded_env()["ONEDNN_MAX_CPU_ISA"] == "AVX512_CORE_AMX"  # off: workers compute like the driver
    monkeypatch.setenv(numerics.BITWISE_ENV, "1")
    env = forwarded_env()
    assert env[numerics.BITWISE_ENV] == "1"
    assert all(env[key] == value for key, value in numerics.PINNED_ENV.items())
