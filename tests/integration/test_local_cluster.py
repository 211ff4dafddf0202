"""`make run`'s one local Ray head: stages in separate processes join the same head, and nothing
of it is left running afterwards."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from pipeline.train.local_cluster import run_to_end, shared_ray
from pipeline.train.storage import SHARED_ENV

pytestmark = pytest.mark.integration

JOIN = "import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); print(ray.get_runtime_context().get_node_id())"


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_stages_join_one_head_which_is_stopped_with_its_processes():
    with shared_ray() as env:
        address = env["RAY_ADDRESS"]
        port = int(address.rsplit(":", 1)[1])
        assert address.startswith("127.0.0.1:") and env[SHARED_ENV] == "1" and listening(port)
        # Two drivers, like two stages, land on the same node of the same head.
        stage_env = {**os.environ, **env}
        nodes = [subprocess.run([sys.executable, "-c", JOIN, address], env=stage_env, capture_output=True, text=True,
                                check=True, timeout=120).stdout.split()[-1] for _ in range(2)]
        assert nodes[0] == nodes[1] and len(nodes[0]) > 10
        # Without the run's token the head refuses a driver.
        stranger = {**stage_env, "RAY_AUTH_TOKEN": "0" * 64}
        refused = subprocess.run([sys.executable, "-c", JOIN, address], env=stranger, capture_output=True, text=True,
                                 timeout=60)
        assert refused.returncode != 0
    assert not listening(port)  # stop() returns once the head's whole process group is gone
    # A later plain ray.init() must not find the stopped head and try to join it.
    default_address_file = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
    assert not default_address_file.is_file() or default_address_file.read_text().strip() != address
    left = subprocess.run(["pgrep", "-f", f"gcs_server_port={port}|--port={port}"], capture_output=True, text=True)
    assert left.stdout.strip() == "", f"processes of the head still running: {left.stdout}"


def test_an_address_already_set_starts_nothing(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    with shared_ray() as env:
        assert env == {}


def test_a_sigterm_is_passed_on_and_the_command_is_waited_for():
    # The command stands for `dvc repro`: it exits 7 on SIGTERM, after a moment of clean-up.
    command = [sys.executable, "-c", "import signal, sys, time; "
               "signal.signal(signal.SIGTERM, lambda *a: (time.sleep(0.5), sys.exit(7))); "
               "print('ready', flush=True); time.sleep(60)"]
    timer = threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        assert run_to_end(command, dict(os.environ)) == 7
    finally:
        timer.cancel()


def test_repro_with_nothing_to_run_starts_no_ray(tmp_path):
    """`make run` when every stage is up to date: `python -m pipeline repro` asks `dvc status` first
    and runs `dvc repro` without starting a head (whose start-up was 23 of a no-op's 25 s)."""
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo), "DVC_NO_ANALYTICS": "true", "PATH":
           f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("RAY_ADDRESS", None)
    run = lambda *cmd: subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        assert run(*cmd).returncode == 0
    (tmp_path / "dvc.yaml").write_text("stages:\n  hello:\n    cmd: echo hi > out.txt\n    outs: [out.txt]\n")
    assert run("dvc", "repro", "-q").returncode == 0 and (tmp_path / "out.txt").read_text() == "hi\n"
    started = time.monotonic()
    noop = run(sys.executable, "-m", "pipeline", "repro")
    seconds = time.monotonic() - started
    assert noop.returncode == 0, noop.stderr[-2000:]
    assert "up to date" in noop.stdout + noop.stderr, noop.stdout
    assert "one local head" not in noop.stdout + noop.stderr, "no Ray head may start for a no-op"
    assert seconds < 10, f"a no-op repro took {seconds:.1f} s (limit 10)"
