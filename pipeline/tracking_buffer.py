"""Rank 0's MLflow logging that survives a tracking-server outage (docs/reliability.md).

Logging must never stop training: before this, rank 0's first failed ``log_batch`` raised inside the
Ray Train worker, which Ray counted as a worker failure (using up ``max_failures``) and retried from
the last checkpoint against the same dead server. :class:`OutageTolerantLogger` wraps a
:class:`pipeline.tracking.RunLogger` and, during training, never raises out of its methods:

- **metrics** are kept in a bounded buffer (:data:`MAX_POINTS` points, about 100 bytes each, so
  about 10 MB at most) and written at each flush (each report); a failed flush keeps them and the
  next flush retries. When the buffer is full the *oldest* points are dropped (training is never
  blocked by tracking), counted, and said once per outage in a warning.
- **tags** (the divergence reason, health warnings) are kept and retried with the metrics.
- **images** (the per-report sample grid) are skipped while the server is down, counted: the next
  report's grid shows the same progress, and buffering pictures would cost memory for little.
- the **worker environment** (``environment_worker.json``) is skipped, with a warning, if the
  server is down at the start.

One warning line (no traceback) when an outage starts, one when it ends. :meth:`close`, at the end
of training, waits up to ``GAN_LAB_MLFLOW_WAIT_S`` seconds (default 30) for the server to take
what is left; the driver then checks the server itself and fails the stage if it is still down.
Catching every ``Exception`` is deliberate: whatever a tracking call raises (MLflow's exception,
a ``requests`` error, a timeout), training goes on and the problem is said in the log.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from typing import Any

import numpy as np

from pipeline.redact import mask_credentials

log = logging.getLogger(__name__)

MAX_POINTS = 100_000  # metric points kept while the server is down (about 10,000 steps of 10 scalars)
BATCH = 1000  # MLflow's log_batch takes at most 1000 metrics per call
WAIT_ENV = "GAN_LAB_MLFLOW_WAIT_S"
DEFAULT_WAIT_S = 30.0


def wait_seconds() -> float:
    """How long the end of training waits for an unreachable tracking server (``GAN_LAB_MLFLOW_WAIT_S``)."""
    return float(os.environ.get(WAIT_ENV, DEFAULT_WAIT_S))


def one_line(err: BaseException, limit: int = 300) -> str:
    """The exception's type and first line, credentials masked, at most ``limit`` characters."""
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return mask_credentials(f"{type(err).__name__}: {first}" if first else type(err).__name__)[:limit]


class OutageTolerantLogger:
    """Buffered, retried MLflow logging of one run for a training worker (see the module docstring)."""

    def __init__(self, inner: Any, uri: str, max_points: int = MAX_POINTS):
        self.inner = inner
        self.where = mask_credentials(uri)
        self.max_points = max_points
        self._points: deque[tuple[str, float, int, int]] = deque()
        self._tags: dict[str, str] = {}
        self.down_since: float | None = None
        self.outages = 0
        self.dropped = 0  # metric points dropped (buffer full), over the whole run
        self.skipped_images = 0
        self._drop_warned = False
        self.skip_through = 0  # steps already in the run (see skip_logged); not logged again

    def skip_logged(self, key: str) -> None:
        """A resumed run retrains the steps after its checkpoint; those a killed process had already
        written (its last flush came after that checkpoint was saved) must not appear twice, so steps
        up to the highest logged step of ``key`` are skipped. A down server skips nothing."""
        try:
            self.skip_through = self.inner.logged_through(key)
        except Exception as err:  # noqa: BLE001
            self._failed(err)

    def log_step(self, scalars: dict[str, float], step: int) -> None:
        if step <= self.skip_through:
            return  # written before an interruption: the resumed run computes the same values
        now = int(time.time() * 1000)
        self._points.extend((k, float(v), now, step) for k, v in scalars.items())
        overflow = len(self._points) - self.max_points
        for _ in range(max(0, overflow)):
            self._points.popleft()
        if overflow > 0:
            self.dropped += overflow
            if not self._drop_warned:
                self._drop_warned = True
                log.warning("MLflow buffer full (%d metric points): dropping the oldest while the server at %s "
                            "is down", self.max_points, self.where)

    def flush(self) -> bool:
        """Write the buffered tags and metrics; True when all were written, False (kept) when not."""
        try:
            if self._tags:
                self.inner.set_tags(dict(self._tags))
                self._tags.clear()
            while self._points:
                batch = [self._points[i] for i in range(min(BATCH, len(self._points)))]
                self.inner.log_points(batch)
                for _ in batch:
                    self._points.popleft()
        except Exception as err:  # noqa: BLE001 - tracking must not stop training (module docstring)
            self._failed(err)
            return False
        self._recovered()
        return True

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.log_step(metrics, step or 0)
        self.flush()

    def set_tags(self, tags: dict[str, str]) -> None:
        self._tags.update(tags)
        self.flush()

    def log_image(self, image: np.ndarray, key: str, step: int) -> None:
        if self.down_since is not None:
            self.skipped_images += 1
            return
        try:
            self.inner.log_image(image, key, step)
        except Exception as err:  # noqa: BLE001
            self.skipped_images += 1
            self._failed(err)

    def log_environment(self, environment: dict[str, Any]) -> None:
        try:
            self.inner.log_environment(environment)
        except Exception as err:  # noqa: BLE001
            self._failed(err)
            log.warning("the worker environment was not recorded in the MLflow run (the server is down)")

    def close(self, wait_s: float | None = None) -> bool:
        """Flush what is left, retrying for up to ``wait_s`` seconds (default :func:`wait_seconds`);
        True when everything was written. Never raises: the driver decides the stage's fate."""
        deadline = time.monotonic() + (wait_seconds() if wait_s is None else wait_s)
        while not self.flush():
            if time.monotonic() >= deadline:
                log.error("MLflow server at %s still unreachable at the end of training: %d metric points and "
                          "%d tag(s) not written", self.where, len(self._points), len(self._tags))
                return False
            time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
        return True

    @property
    def pending(self) -> int:
        """Metric points buffered, not yet written."""
        return len(self._points)

    def _failed(self, err: Exception) -> None:
        if self.down_since is not None:
            return  # one warning per outage
        self.down_since = time.monotonic()
        self.outages += 1
        log.warning("MLflow server at %s unreachable (%s): training goes on; metrics are buffered (at most %d "
                    "points, oldest dropped beyond) and retried at each report, images skipped",
                    self.where, one_line(err, 200), self.max_points)

    def _recovered(self) -> None:
        if self.down_since is None:
            return
        log.warning("MLflow server at %s reachable again after %.0f s: buffered metrics written (%d points "
                    "dropped, %d images skipped so far)", self.where, time.monotonic() - self.down_since,
                    self.dropped, self.skipped_images)
        self.down_since = None
        self._drop_warned = False
