"""The software and hardware a number was computed on, recorded beside every result.

Same code, data and seed give the same numbers only on the same numerics: the library versions, the
CPU's instruction set (oneDNN and MKL pick AVX2, AVX-512 or AMX kernels at run time, and their
reductions differ in the last bits), the thread counts (a parallel sum's order) and the device.
:func:`describe_environment` collects exactly that, cheaply (a few ms) and the same on every call on
one machine, so that two runs that disagree can be told apart by their records: MLflow tags and an
``environment.json`` artifact (``pipeline.tracking``), the ``environment`` key of the metrics files
and ``models/<variant>/run.json``.

Imports only the standard library and torch: it runs in the driver, in Ray workers and in stages.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from pipeline.numerics import describe_mode

# Distributions whose versions decide results or their bookkeeping (PyPI names, as pip shows them).
LIBRARIES = ("torch", "numpy", "ray", "mlflow", "dvc", "scikit-learn", "scipy", "pillow", "pandas",
             "pyarrow", "pydantic", "torchmetrics")

# The CPU features that select the kernels oneDNN/MKL/ATen run (and so the rounding of the results):
# x86 vector widths, FMA, the bf16/fp16/int8 dot-product extensions and AMX tiles; ARM's NEON/SVE
# equivalents. Other flags (virtualisation, mitigations, ...) do not change numbers and are left out.
NUMERIC_FLAGS = ("sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512dq",
                 "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
                 "amx_bf16", "amx_int8", "asimd", "asimdhp", "fphp", "sve", "sve2", "bf16", "i8mm")

# Variables that change which kernels run or how many threads split a reduction, and the switch of
# the bit-reproducible mode that pins them (pipeline.numerics).
ENV_VARS = ("GAN_LAB_BITWISE", "GAN_LAB_BITWISE_THREADS", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA",
            "ATEN_CPU_CAPABILITY", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "OMP_NUM_THREADS",
            "MKL_NUM_THREADS", "CUBLAS_WORKSPACE_CONFIG")

# torch.__config__.parallel_info() lines naming a backend, and the version each says (kept short: the
# rest of that text repeats the thread counts recorded on their own).
_PARALLEL_LINES = {"backend": re.compile(r"^ATen parallel backend: (.+)$"),
                   "openmp": re.compile(r"^OpenMP .*?(?:a\.k\.a\. OpenMP )?([\d.]+)\)?$"),
                   "mkl": re.compile(r"^Intel\(R\) .*Math Kernel Library Version ([\w.]+)"),
                   "onednn": re.compile(r"^(?:Intel\(R\) MKL-DNN|oneDNN) v([\d.]+)")}


def describe_environment(device: str | torch.device = "cpu") -> dict[str, Any]:
    """What the numbers of this process depend on, as a JSON-serialisable dict.

    Args:
        device: the device the computation runs on: a training worker passes its own; everything
            else in the pipeline (evaluation, the evaluator, the report) computes on the CPU.

    Returns:
        ``python``, ``platform``, ``libraries`` (version or None when not installed),
        ``cpu`` (model, numerics-relevant flags, torch's dispatch capability, logical cores),
        ``torch`` (intra-op and inter-op threads, parallel backend, whether deterministic
        algorithms are enforced and the bit-reproducible mode is on), ``env`` (the variables of
        :data:`ENV_VARS`, None when unset), ``device`` and ``cuda`` (version of torch's build, device
        name, None without one). The thread counts and variables are read at each call (a worker
        changes them); the rest is read once per process.
    """
    static = _static()
    return {
        **{k: v for k, v in static.items() if k != "cuda"},
        "torch": {"num_threads": torch.get_num_threads(), "num_interop_threads": torch.get_num_interop_threads(),
                  **describe_mode(), **_parallel_backend()},
        "env": {name: os.environ.get(name) for name in ENV_VARS},
        "device": str(device),
        "cuda": static["cuda"],
    }


@functools.lru_cache(maxsize=1)
def _static() -> dict[str, Any]:
    """The parts that cannot change while a process runs (cached: metadata look-ups take ms each)."""
    model, flags = cpu_info()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": {name: _version(name) for name in LIBRARIES},
        "cpu": {"model": model, "flags": flags, "capability": torch.backends.cpu.get_cpu_capability(),
                "logical_cores": os.cpu_count()},
        "cuda": {"version": torch.version.cuda, "device_name": _cuda_device_name()},
    }


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def cpu_info(cpuinfo: str | Path = "/proc/cpuinfo") -> tuple[str, list[str]]:
    """(model name, the :data:`NUMERIC_FLAGS` the CPU has, in that order) from ``cpuinfo``.

    Linux lists every core; the first core's lines are read (cores of one machine are alike). x86
    says ``model name`` and ``flags``, ARM ``Features`` (and often no model name). Without the file
    (macOS, Windows) the model is ``platform.processor()`` and the flags are empty.
    """
    model, flags = None, None
    try:
        with open(cpuinfo) as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model is None:
                    model = value.strip()
                elif key in ("flags", "Features") and flags is None:
                    flags = set(value.split())
                if model is not None and flags is not None:
                    break
    except OSError:
        pass
    return model or platform.processor() or platform.machine(), [f for f in NUMERIC_FLAGS if f in (flags or ())]


def _parallel_backend() -> dict[str, str | None]:
    """ATen's parallel backend and the OpenMP, MKL and oneDNN versions (None: not in this build)."""
    lines = torch.__config__.parallel_info().splitlines()
    found: dict[str, str | None] = dict.fromkeys(_PARALLEL_LINES)
    for key, pattern in _PARALLEL_LINES.items():
        found[key] = next((m.group(1) for line in lines if (m := pattern.match(line))), None)
    return found


def _cuda_device_name() -> str | None:
    """The first visible CUDA device's name (a Ray GPU worker sees only its own), or None."""
    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(0)


def environment_tags(env: dict[str, Any]) -> dict[str, str]:
    """``env`` as flat MLflow tags: ``env.<a>.<b>`` keys, lists joined by spaces, None as ``null``.

    Tags rather than params: params are what a run was asked to do and are compared across
    machines; tags describe where it ran, so two runs of one config on two machines stay comparable.
    """
    flat: dict[str, str] = {}

    def walk(tree: dict[str, Any], prefix: str) -> None:
        for key, value in tree.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            elif isinstance(value, (list, tuple)):
                flat[f"{prefix}{key}"] = " ".join(map(str, value))
            else:
                flat[f"{prefix}{key}"] = "null" if value is None else str(value)

    walk(env, "env.")
    return flat


if __name__ == "__main__":  # python -m pipeline.environment: what this machine would record
    import json

    json.dump(describe_environment(), sys.stdout, indent=2)
    print()
