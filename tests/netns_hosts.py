"""Two test hosts on this machine: network namespaces joined by a veth pair, each with its own
address, with a real Ray node (head on host 1, worker on host 2) and an MLflow server on host 1.

On Linux Ray replaces a loopback node address with the machine's network address, so a two-node
Ray cluster on loopback is not possible; namespaces give each node an address of its own, and all
traffic stays between them. Everything is started here and ended here: every process started in
a namespace is killed by pid (``ip netns pids``), then the namespaces and the veth pair are deleted.
Needs root (CAP_NET_ADMIN) and iproute2; :func:`unavailable` says why not when they are missing.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# Pinned ports (the same on both hosts: each namespace has its own port space).
GCS_PORT, DASHBOARD_PORT, MLFLOW_PORT = 6390, 8265, 5000
NODE_PORTS = ["--node-manager-port=6391", "--object-manager-port=6392", "--dashboard-agent-grpc-port=6393",
              "--dashboard-agent-listen-port=6394", "--metrics-export-port=6395", "--runtime-env-agent-port=6396",
              "--min-worker-port=11000", "--max-worker-port=11200", "--object-store-memory=300000000"]


def unavailable() -> str | None:
    """Why namespaces cannot be made here (not root, no `ip`), or None."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "needs iproute2 (`ip`)"
    probe = f"glprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], check=False)
    return None


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True)


class TwoHosts:
    """``host_ip[1]`` runs the Ray head and MLflow, ``host_ip[2]`` a Ray worker node."""

    def __init__(self, workdir: Path):
        tag = os.getpid() % 10_000
        self.workdir = workdir
        self.ns = {1: f"gl{tag}h1", 2: f"gl{tag}h2"}
        self.dev = {1: f"gl{tag}v1", 2: f"gl{tag}v2"}
        subnet = 10 + os.getpid() % 200
        self.host_ip = {1: f"10.213.{subnet}.1", 2: f"10.213.{subnet}.2"}
        self.env = {key: value for key, value in os.environ.items()
                    if key not in ("RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "MLFLOW_TRACKING_URI")}
        # Ray 2.60 clusters authenticate with a token: a fresh one for this cluster, given to every process.
        self.env.update({"PATH": f"{BIN}:{os.environ['PATH']}", "RAY_USAGE_STATS_ENABLED": "0",
                         "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
                         "PYTHONUNBUFFERED": "1"})
        self.logs: list = []
        self.processes: list[subprocess.Popen] = []
        # Ray's session directories hold unix sockets, whose paths may not exceed 107 bytes: short ones.
        self.ray_tmp = {n: Path(f"/tmp/glray{tag}h{n}") for n in (1, 2)}

    @property
    def dashboard(self) -> str:
        return f"http://{self.host_ip[1]}:{DASHBOARD_PORT}"

    @property
    def mlflow_uri(self) -> str:
        return f"http://{self.host_ip[1]}:{MLFLOW_PORT}"

    # -- network --------------------------------------------------------------------------------
    def create_network(self) -> None:
        for n in (1, 2):
            _run("ip", "netns", "add", self.ns[n])
        _run("ip", "link", "add", self.dev[1], "type", "veth", "peer", "name", self.dev[2])
        for n in (1, 2):
            _run("ip", "link", "set", self.dev[n], "netns", self.ns[n])
            self.exec_checked(n, "ip", "addr", "add", f"{self.host_ip[n]}/24", "dev", self.dev[n])
            self.exec_checked(n, "ip", "link", "set", self.dev[n], "up")
            self.exec_checked(n, "ip", "link", "set", "lo", "up")

    def exec_checked(self, n: int, *args: str) -> None:
        _run("ip", "netns", "exec", self.ns[n], *args)

    def run_in(self, n: int, args: list[str], timeout: float, env: dict | None = None,
               cwd: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.ns[n], *args], env={**self.env, **(env or {})},
                              cwd=cwd, capture_output=True, text=True, timeout=timeout)

    def start_in(self, n: int, args: list[str], log_name: str, env: dict | None = None,
                 cwd: Path | None = None) -> subprocess.Popen:
        log = open(self.workdir / log_name, "w")
        self.logs.append(log)
        process = subprocess.Popen(["ip", "netns", "exec", self.ns[n], *args], env={**self.env, **(env or {})},
                                   cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        return process

    # -- services -------------------------------------------------------------------------------
    def start_ray(self, node_env: dict[str, str] | None = None) -> None:
        """Head on host 1, worker on host 2; one CPU each, so two 1-CPU Train workers land one per host.
        Gloo finds its interface by the machine's host name, which has no address inside a
        namespace: GLOO_SOCKET_IFNAME names each host's own interface. ``node_env`` is the nodes' own
        environment (secrets such as MLflow credentials), which every Ray worker on them inherits."""
        node_env = node_env or {}
        head = self.start_in(1, [str(BIN / "ray"), "start", "--head", "--block", f"--node-ip-address={self.host_ip[1]}",
                          f"--port={GCS_PORT}", "--num-cpus=1", '--resources={"host1": 1}',
                          "--include-dashboard=true", f"--dashboard-host={self.host_ip[1]}",
                          f"--dashboard-port={DASHBOARD_PORT}", f"--temp-dir={self.ray_tmp[1]}",
                          *NODE_PORTS], "ray-host1.log", env={**node_env, "GLOO_SOCKET_IFNAME": self.dev[1]})
        self.wait_http(1, f"{self.dashboard}/api/version", 60, head, "ray-host1.log")
        worker = self.start_in(2, [str(BIN / "ray"), "start", "--block", f"--address={self.host_ip[1]}:{GCS_PORT}",
                          f"--node-ip-address={self.host_ip[2]}", "--num-cpus=1", '--resources={"host2": 1}',
                          f"--temp-dir={self.ray_tmp[2]}", *NODE_PORTS],
                      "ray-host2.log", env={**node_env, "GLOO_SOCKET_IFNAME": self.dev[2]})
        deadline = time.time() + 90
        while time.time() < deadline:
            self._check_alive(worker, "ray-host2.log")
            status = self.run_in(1, [str(BIN / "ray"), "status", f"--address={self.host_ip[1]}:{GCS_PORT}"], 30)
            if "host2" in status.stdout and "host1" in status.stdout:
                return
            time.sleep(1)
        raise TimeoutError(f"the worker node did not join: {(self.workdir / 'ray-host2.log').read_text()[-2000:]}")

    def start_mlflow(self) -> None:
        """The team server of infra/mlflow/serve.sh on host 1's address: allowed hosts set, basic
        auth on (user ``admin``, password :attr:`mlflow_password`)."""
        self.mlflow_password = secrets.token_hex(8)
        self.mlflow = self.start_in(1, ["bash", str(ROOT / "infra/mlflow/serve.sh")], "mlflow.log", env={
            "MLFLOW_HOST": self.host_ip[1], "MLFLOW_PORT": str(MLFLOW_PORT),
            "MLFLOW_ALLOWED_HOSTS": f"{self.host_ip[1]}:{MLFLOW_PORT}", "MLFLOW_WORKERS": "1",
            "MLFLOW_DATA_DIR": str(self.workdir / "mlflow-server"), "MLFLOW_BIN": str(BIN / "mlflow"),
            "MLFLOW_AUTH": "1", "MLFLOW_AUTH_ADMIN_PASSWORD": self.mlflow_password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16)})

    def mlflow_credentials(self, password: str | None = None) -> dict[str, str]:
        return {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": password or self.mlflow_password}

    def wait_mlflow(self) -> None:
        self.wait_http(1, f"{self.mlflow_uri}/health", 90, self.mlflow, "mlflow.log")

    def wait_http(self, n: int, url: str, timeout: float, process: subprocess.Popen, log_name: str) -> None:
        probe = ("import urllib.error, urllib.request\n"  # any HTTP answer, an error status too, means it is up
                 f"try:\n    urllib.request.urlopen({url!r}, timeout=2)\nexcept urllib.error.HTTPError:\n    pass")
        deadline = time.time() + timeout
        while time.time() < deadline:
            self._check_alive(process, log_name)
            if self.run_in(n, [sys.executable, "-c", probe], 10).returncode == 0:
                return
            time.sleep(0.5)
        raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")

    def _check_alive(self, process: subprocess.Popen, log_name: str) -> None:
        if process.poll() is not None:
            raise RuntimeError(f"{log_name}: exited with {process.returncode}: "
                               f"{(self.workdir / log_name).read_text()[-3000:]}")

    def python_in(self, n: int, code: str, env: dict | None = None) -> object:
        """Run Python on host ``n``; returns what it printed as JSON on its last line."""
        done = self.run_in(n, [sys.executable, "-c", code], 120, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    def pids(self, n: int) -> list[int]:
        listed = subprocess.run(["ip", "netns", "pids", self.ns[n]], capture_output=True, text=True)
        return [int(p) for p in listed.stdout.split()]

    def process_titles(self, n: int) -> dict[int, str]:
        titles = {}
        for pid in self.pids(n):
            try:
                titles[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                pass
        return titles

    # -- teardown -------------------------------------------------------------------------------
    def close(self) -> None:
        """End every process in both namespaces by pid (TERM, then KILL), then remove the network."""
        # TERM once, then KILL until both namespaces are empty (a process may fork meanwhile).
        for sig, wait_s in ((signal.SIGTERM, 5.0), *((signal.SIGKILL, 1.0),) * 10):
            if not (self.pids(1) or self.pids(2)):
                break
            for n in (1, 2):
                for pid in self.pids(n):
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
            deadline = time.time() + wait_s
            while time.time() < deadline and (self.pids(1) or self.pids(2)):
                time.sleep(0.2)
        for n in (1, 2):
            subprocess.run(["ip", "netns", "del", self.ns[n]], capture_output=True)
        subprocess.run(["ip", "link", "del", self.dev[1]], capture_output=True)
        for process in self.processes:
            try:
                process.wait(timeout=5)  # reap the `ip netns exec` children this object started
            except subprocess.TimeoutExpired:
                pass
        for log in self.logs:
            log.close()
        for path in self.ray_tmp.values():
            shutil.rmtree(path, ignore_errors=True)


def job_copy(target: Path) -> Path:
    """What `ray job submit --working-dir` uploads: the repository's files (tracked and new, not ignored)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target
