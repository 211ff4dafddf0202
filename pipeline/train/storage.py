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
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from pipeline.artifacts import encode_run_marker, run_marker_name, write_run_marker

STORAGE_ENV = "GAN_LAB_STORAGE"


def is_uri(location: str | Path) -> bool:
    return "://" in str(location)


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
