"""The bit-reproducible mode: the same bits from the same code, data and seed on any x86 CPU with AVX2.

Off by default (see docs/reproducibility.md, "Bit-reproducible mode", for the measured cost and why).
``GAN_LAB_BITWISE=1`` turns it on for every process that computes: the stage processes (``stages/
_common.py`` calls :func:`pin_environment` before any tensor work), and the Ray Train / Tune workers
(the launcher puts :func:`pinned_env` into the runtime env, so they *start* with it; the per-worker
loop calls :func:`configure_torch`). What it sets, and why each setting is needed:

- ``ONEDNN_MAX_CPU_ISA=AVX2`` (and its old name ``DNNL_MAX_CPU_ISA``): oneDNN, which runs the
  convolutions, JIT-compiles kernels for the widest ISA the CPU has (AVX-512, AMX on a Xeon); their
  blocking and so the order of each sum differs from the AVX2 kernels. Capped at AVX2, every x86
  CPU from 2013 on runs the same kernels.
- ``ATEN_CPU_CAPABILITY=avx2``: torch's own vectorised kernels (element-wise ops, reductions, Adam's
  update) are compiled for DEFAULT, AVX2 and AVX-512 and picked at start-up; the vector width
  changes a reduction's order.
- ``MKL_CBWR=COMPATIBLE``: MKL (the GEMMs of ``Linear`` layers) dispatches on CPU model and vendor.
  MKL's Conditional Numerical Reproducibility branch AVX2 is only guaranteed on *Intel* CPUs (on
  others MKL falls back to its AUTO branch, so an AMD and an Intel machine could still differ);
  COMPATIBLE is the one branch MKL guarantees across vendors. Measured cost: see the docs.
- ``torch.use_deterministic_algorithms(True)``: any op without a deterministic kernel raises instead
  of silently varying from run to run (on CPU almost all are deterministic already; on CUDA this
  also needs ``CUBLAS_WORKSPACE_CONFIG=:4096:8``, which is set too).
- Fixed threads: how a parallel reduction is split (and MKL's CNR) depends on the thread count. A
  training worker already uses ``cpus_per_worker`` threads (the config); a stage process uses
  ``GAN_LAB_BITWISE_THREADS`` (default :data:`DEFAULT_THREADS`) instead of "as many as the machine
  has cores". Inter-op threads run independent ops side by side and never split one sum: left as is.

The variables must be in the environment before oneDNN, MKL and ATen's dispatcher first compute
(they read them once, lazily, at first use), which is why workers get them through the runtime env
rather than setting them after they started. The mode *overrides* values already set (an
``ONEDNN_MAX_CPU_ISA=SSE41`` in the shell included): the point is one numerics everywhere.

Imports only the standard library (torch lazily), so it can run before anything else.
"""

from __future__ import annotations

import logging
import os
from typing import Mapping

log = logging.getLogger(__name__)

BITWISE_ENV = "GAN_LAB_BITWISE"
THREADS_ENV = "GAN_LAB_BITWISE_THREADS"
# The lab's reference machine has 2 cores; what matters is the same count everywhere, not its value.
DEFAULT_THREADS = 2

PINNED_ENV: dict[str, str] = {
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "DNNL_MAX_CPU_ISA": "AVX2",  # oneDNN < 2.0's name; harmless for newer ones
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "COMPATIBLE",
    "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
}

_TRUE = ("1", "true", "yes", "on")


def bitwise_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``GAN_LAB_BITWISE`` (in ``environ``, default the process's) turns the mode on."""
    environ = os.environ if environ is None else environ
    return environ.get(BITWISE_ENV, "").strip().lower() in _TRUE


def pinned_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables the mode sets (:data:`PINNED_ENV`) when it is on, else ``{}``."""
    return dict(PINNED_ENV) if bitwise_enabled(environ) else {}


def stage_threads(environ: Mapping[str, str] | None = None) -> int:
    """Intra-op threads of a stage process in the mode: ``GAN_LAB_BITWISE_THREADS`` or 2."""
    environ = os.environ if environ is None else environ
    return int(environ.get(THREADS_ENV) or DEFAULT_THREADS)


def pin_environment() -> bool:
    """Put :data:`PINNED_ENV` into this process's environment if the mode is on; returns whether.

    Call before the first tensor operation (importing torch is fine: the libraries read the
    variables at first use). Warns when the CPU lacks AVX2/FMA: its results cannot match.
    """
    if not bitwise_enabled():
        return False
    os.environ.update(PINNED_ENV)
    _warn_without_avx2()
    return True


def configure_torch(threads: int | None = None) -> bool:
    """In the mode, make torch deterministic and fix its intra-op threads; returns whether it did.

    Args:
        threads: the thread count (a training worker passes ``cpus_per_worker``); None: a stage
            process's :func:`stage_threads`.
    """
    if not pin_environment():
        return False
    import torch

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads or stage_threads())
    return True


def describe_mode() -> dict[str, object]:
    """The mode as the environment record keeps it: ``{"bitwise": bool, "deterministic": bool}``."""
    import torch

    return {"bitwise": bitwise_enabled(), "deterministic": torch.are_deterministic_algorithms_enabled()}


def _warn_without_avx2(cpuinfo: str = "/proc/cpuinfo") -> None:
    """A CPU without AVX2 and FMA runs narrower kernels whatever the caps say (ARM: other kernels)."""
    try:
        with open(cpuinfo) as handle:
            flags = next((line.split(":", 1)[1].split() for line in handle if line.startswith("flags")), [])
    except OSError:
        return  # not Linux: nothing to check against
    if not {"avx2", "fma"} <= set(flags):
        log.warning("%s=1 but this CPU has no AVX2/FMA: its results will not match an AVX2 machine's",
                    BITWISE_ENV)
