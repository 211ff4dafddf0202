"""Where Ray Train keeps a run's checkpoints, and the driver's small marker file beside them.

A storage location is a local path (default ``.ray_runs``), a path every node of a cluster mounts
(NFS, EFS, a Kubernetes volume) or an object-storage URI (``s3://bucket/runs``, ``gs://...``). On a
cluster it must be reachable from every node: only rank 0 writes checkpoints, but any node may host
rank 0 after a restart, and resuming reads them back. ``GAN_LAB_STORAGE`` sets it for the train stage (``tune@`` keeps
its trial storage local for now).

Files are reached through pyarrow's filesystems, the layer Ray Train itself uses for storage, so a
path and a URI are handled alike. The marker's name and format are :mod:`pipeline.artifacts`'; a
local marker is written by its atomic rule, an object store's by the store (an object is replaced
whole when its upload completes).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import pyarrow.fs as pafs

from pipeline.artifacts import encode_run_marker, run_marker_name, write_run_marker

STORAGE_ENV = "GAN_LAB_STORAGE"
# Set to 1 to declare a storage path shared by every node (an NFS/EFS mount this check cannot recognise).
SHARED_ENV = "GAN_LAB_STORAGE_SHARED"
# Filesystem types (/proc/mounts) that other machines can mount too: a path on them counts as shared.
NETWORK_FS = ("nfs", "nfs4", "cifs", "smb3", "ceph", "glusterfs", "lustre", "gpfs", "beegfs", "fuse.s3fs",
              "fuse.gcsfuse", "fuse.juicefs", "fuse.glusterfs", "fuse.cephfs")


def is_uri(location: str | Path) -> bool:
    return "://" in str(location)


def filesystem_type(path: str | Path, mounts: str = "/proc/mounts") -> str | None:
    """The type of the filesystem holding ``path`` (its longest mount point in ``mounts``), or None."""
    try:
        table = [line.split()[1:3] for line in Path(mounts).read_text().splitlines() if len(line.split()) > 2]
    except OSError:
        return None
    path = os.path.realpath(path)
    best = max((point for point, _ in table if path == point or path.startswith(point.rstrip("/") + "/")),
               key=len, default=None)
    return dict(table)[best] if best is not None else None


def cluster_storage_problems(location: str, env: Mapping[str, str] = os.environ,
                             mounts: str = "/proc/mounts") -> list[str]:
    """Checkpoint storage a Ray cluster (``RAY_ADDRESS``) cannot use: the default or a path on a
    node-local filesystem. Rank 0 writes checkpoints from whichever node it lands on and a restart
    may resume on another, so a node-local path loses them or resumes from nothing. Passes an
    object-store URI, a path on a network filesystem (:data:`NETWORK_FS`), and anything with
    ``GAN_LAB_STORAGE_SHARED=1`` (a shared mount this check cannot see, or a one-node cluster)."""
    if not env.get("RAY_ADDRESS") or env.get(SHARED_ENV) == "1":
        return []
    if is_uri(location) and not str(location).startswith("file://"):
        return []
    path = str(location).removeprefix("file://")
    fix = (f"set {STORAGE_ENV} to an s3://, gs:// or abfs:// URI or a path every node mounts "
           f"({SHARED_ENV}=1 declares a mount shared)")
    cluster = f"on the Ray cluster RAY_ADDRESS={env['RAY_ADDRESS']}"
    fs_type = filesystem_type(path, mounts)
    if fs_type in NETWORK_FS:  # (also a --storage path given without the variable)
        return []
    if not env.get(STORAGE_ENV):
        return [f"{STORAGE_ENV} is unset: checkpoints would go to {path} on one node only {cluster}; {fix}"]
    return [f"{STORAGE_ENV}={location}: a node-local path (filesystem {fs_type or 'unknown'}) {cluster}: a worker "
            f"restarted on another node could not resume from it; {fix}"]


class RunStorage:
    """One storage location: Ray's run directories ``<location>/<run name>/`` and the driver's
    markers ``<location>/<run name>.run.json`` (which MLflow run a Ray run belongs to)."""

    def __init__(self, location: str | Path):
        self.location = str(location) if is_uri(location) else str(Path(location).resolve())
        self.fs, self.base = pafs.FileSystem.from_uri(self.location) if is_uri(self.location) else \
            (pafs.LocalFileSystem(), self.location)

    def __str__(self) -> str:
        return self.location

    def run_dir(self, run_name: str) -> str:
        """Where Ray Train writes the run's checkpoints (as Ray names it: ``RunConfig(storage_path, name)``)."""
        return f"{self.location.rstrip('/')}/{run_name}"

    def read_marker(self, run_name: str) -> dict[str, Any] | None:
        path = self._marker(run_name)
        if self.fs.get_file_info(path).type != pafs.FileType.File:
            return None
        with self.fs.open_input_stream(path) as stream:
            return json.loads(stream.read().decode())

    def write_marker(self, run_name: str, marker: dict[str, Any]) -> None:
        if isinstance(self.fs, pafs.LocalFileSystem):  # a path (or file:// URI): written aside, then renamed
            write_run_marker(self._marker(run_name), marker)
            return
        self.fs.create_dir(self.base, recursive=True)
        with self.fs.open_output_stream(self._marker(run_name)) as stream:
            stream.write(encode_run_marker(marker))

    def remove_run(self, run_name: str) -> None:
        """Delete the run's checkpoints (a fresh start must not resume from them)."""
        path = f"{self.base.rstrip('/')}/{run_name}"
        if self.fs.get_file_info(path).type == pafs.FileType.Directory:
            self.fs.delete_dir(path)

    def _marker(self, run_name: str) -> str:
        return f"{self.base.rstrip('/')}/{run_marker_name(run_name)}"
