"""Rank 0's MLflow logging during an outage (pipeline/tracking_buffer.py): bounded, oldest dropped
and counted, never raising. The outage is real: a tracking URI on a loopback port where nothing
listens, so every call fails with a refused connection (the restart is tested in
tests/integration/test_mlflow_outage.py)."""

import logging
import socket

import numpy as np

from pipeline.redact import mask_credentials
from pipeline.tracking import RunLogger
from pipeline.tracking_buffer import OutageTolerantLogger


def dead_uri() -> str:
    with socket.socket() as sock:  # a free port, closed again: nothing listens there
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_a_full_buffer_drops_the_oldest_points_counts_them_and_nothing_raises(caplog):
    uri = dead_uri()
    logger = OutageTolerantLogger(RunLogger(uri, "0" * 32, max_retries=0), uri, max_points=50)
    with caplog.at_level(logging.WARNING, logger="pipeline.tracking_buffer"):
        for step in range(1, 11):
            logger.log_step({f"loss/{i}": float(i) for i in range(10)}, step)
            assert logger.flush() is False  # kept, not raised
        logger.log_image(np.zeros((8, 8, 3), np.uint8), "samples", 1)
        logger.set_tags({"divergence": "x"})
        assert logger.close(wait_s=0) is False

    assert logger.pending == 50 and logger.dropped == 50  # 100 points logged, the cap is 50
    assert {p[3] for p in logger._points} == {6, 7, 8, 9, 10}  # the oldest steps went first
    assert logger.skipped_images == 1 and logger._tags == {"divergence": "x"}  # tags kept for a retry
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unreachable (" in m for m in messages) == 1, messages  # one warning per outage
    assert sum("buffer full" in m for m in messages) == 1, messages
    assert any("still unreachable at the end of training: 50 metric points and 1 tag(s)" in m for m in messages)
    assert not any(r.exc_info for r in caplog.records)


def test_passwords_in_addresses_are_masked():
    assert mask_credentials("http://alice:s3cret@mlflow:5000") == "http://alice:***@mlflow:5000"
    assert mask_credentials("postgresql://u:p%40ss@db/x and http://h:1") == "postgresql://u:***@db/x and http://h:1"


def test_a_resumed_run_does_not_log_the_steps_a_killed_process_already_wrote(tmp_path):
    """A killed run had flushed steps 1..8 but its last checkpoint was at step 5: the resumed process
    retrains 6..10 and logs each step once (a real SQLite store)."""
    from pipeline import tracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment = tracking.ensure_experiment(uri, tmp_path)
    run_id = tracking.start_run(uri, experiment, "r", {}, {})
    killed = OutageTolerantLogger(RunLogger(uri, run_id), uri)
    for step in range(1, 9):
        killed.log_step({"loss/D": float(step), "loss/G": -float(step)}, step)
    assert killed.flush()

    resumed = OutageTolerantLogger(RunLogger(uri, run_id), uri)
    resumed.skip_logged("loss/D")
    assert resumed.skip_through == 8
    for step in range(6, 11):
        resumed.log_step({"loss/D": float(step), "loss/G": -float(step)}, step)
    assert resumed.close(wait_s=0)
    client = RunLogger(uri, run_id).client
    for key in ("loss/D", "loss/G"):
        assert sorted(m.step for m in client.get_metric_history(run_id, key)) == list(range(1, 11))
