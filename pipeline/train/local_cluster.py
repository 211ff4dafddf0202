"""One local Ray for a whole ``dvc repro``: a single-node head on loopback that every stage joins.

A stage on its own starts an embedded Ray (``launcher.init_ray``) and stops it when it ends: about
7 seconds of start-up and shut-down per stage that uses Ray. ``make run`` runs many of them in a
row, so it starts one head here first and gives each stage its address (``RAY_ADDRESS``); a stage
then joins in about a second. The head is a ``ray start --head --block`` process in its own
process group, ended (the whole group) when the run ends, however it ends. With ``RAY_ADDRESS``
already set (a real cluster) nothing is started.

Joining through ``RAY_ADDRESS`` is the cluster path, whose storage check wants checkpoints every
node can reach; on a one-node head every path is, so the environment declares it
(``GAN_LAB_STORAGE_SHARED=1``). The head asks for a token (Ray's token authentication, a fresh
random one per run, given to the stages in their environment), so another local user cannot run
code on it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

from pipeline.train.storage import SHARED_ENV

DASHBOARD_PORT = 8265
START_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def head_command(port: int, dashboard_port: int, temp_dir: str) -> list[str]:
    """``ray start`` of a loopback-only head with the machine's CPUs, kept in the foreground. The
    ports Ray would otherwise take at fixed defaults (client server 10001, dashboard agent 52365)
    are free ones, so the head does not collide with another Ray on the machine. Its own temporary
    directory keeps its address out of ``/tmp/ray/ray_current_cluster``, where any later plain
    ``ray.init()`` on the machine would find it and try to join the stopped head."""
    ray = Path(sys.executable).with_name("ray")
    return [str(ray), "start", "--head", "--block", f"--temp-dir={temp_dir}", "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}",
            f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
            "--disable-usage-stats"]


def wait_until_ready(address: str, head: subprocess.Popen, env: dict[str, str],
                     timeout_s: float = START_TIMEOUT_S) -> None:
    """Return once a driver can join ``address``; raise RuntimeError if the head exits or is not
    up within ``timeout_s`` (each try gets only what is left of it)."""
    deadline = time.monotonic() + timeout_s
    probe = [sys.executable, "-c", "import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False)", address]
    while (left := deadline - time.monotonic()) > 0:
        if head.poll() is not None:
            raise RuntimeError(f"the local Ray head exited with code {head.returncode} before it was ready")
        try:
            if subprocess.run(probe, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=max(1.0, left)).returncode == 0:
                return
        except subprocess.TimeoutExpired:
            break
        time.sleep(1.0)
    raise RuntimeError(f"the local Ray head at {address} was not ready after {timeout_s:.0f} s")


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # (a process of the group we may not signal: it exists)
        return True
    return True


def stop(head: subprocess.Popen, grace_s: float = 15.0) -> None:
    """End the head and everything it started, its whole process group (raylet, GCS and workers can
    outlive ``ray start`` itself): SIGTERM, then SIGKILL after ``grace_s``. SIGTERM and SIGINT are
    ignored meanwhile, so a second stop request cannot cut the clean-up short."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(head.pid, sig)
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    head.wait(timeout=0.2)  # (reaps the leader, so its pid leaves the group)
                if not group_alive(head.pid):
                    return
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_to_end(command: list[str], env: dict[str, str]) -> int:
    """Run ``command`` and return its exit code once it has ended. A SIGTERM to this process is
    passed on to it (``dvc`` then stops its stage), and Ctrl-C, which the terminal sends to both,
    waits for it too: the head is stopped only after the stage that uses it."""
    child = subprocess.Popen(command, env=env)
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: child.send_signal(signal.SIGTERM))
    try:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:
                continue
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def shared_ray() -> Iterator[dict[str, str]]:
    """Yield the environment that makes the stages join one local Ray head ({} with ``RAY_ADDRESS``
    set already); the head is stopped on exit."""
    if os.environ.get("RAY_ADDRESS"):
        yield {}
        return
    port = free_port()
    dashboard = DASHBOARD_PORT if port_is_free(DASHBOARD_PORT) else free_port()
    address = f"127.0.0.1:{port}"
    # Loopback only: without RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 a driver would swap 127.0.0.1 in the
    # address for the machine's network address, where this head does not listen.
    stage_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
                 "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    env = {**os.environ, **stage_env, "RAY_USAGE_STATS_ENABLED": "0"}
    # SIGTERM ends this process through SystemExit, so the `finally` below stops the head (a plain
    # SIGTERM would leave it running); run_to_end passes it on to the command instead.
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    temp_dir = tempfile.mkdtemp(prefix="ray-gan-lab-")  # short: Ray's socket paths live under it
    head = subprocess.Popen(head_command(port, dashboard, temp_dir), env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_ready(address, head, env)
        print(f"Ray: one local head for every stage at {address}; dashboard http://127.0.0.1:{dashboard}",
              flush=True)
        yield {"RAY_ADDRESS": address, SHARED_ENV: "1", **stage_env}
    finally:
        stop(head)
        shutil.rmtree(temp_dir, ignore_errors=True)  # (the stages' logs went to their own output)
        signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)

