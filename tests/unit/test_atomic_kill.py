"""Writers killed with SIGKILL at random points never leave a truncated output behind.

A real writer process (pipeline.artifacts' write rule) rewrites a JSON file and a directory of three
files over and over, each version ``k`` with contents that say ``k`` throughout; it is killed at a
random moment, at least 20 times and until 5 kills have landed inside a write (each writer numbers its versions from its own base). A reader in this
process reads the targets while the writer runs and after each kill: every read must be absent
(only before the first write, or for the directory in the gap of its swap) or one complete version,
never part of one or a mix of two; after a kill the JSON file is the old writer's last version or one
of the new writer's.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAYLOAD = 20_000  # ints in the JSON file: ~100 KB, so a kill often lands inside a write
DIR_FILES = ("a.bin", "b.bin", "c.bin")
LINES = 4_000  # lines per directory file, written in 16 chunks (each a separate write call)
ITERATIONS = 20  # kills at least
MID_WRITE_KILLS = 5  # and more kills until this many landed inside a write (timing varies with load)
MAX_ITERATIONS = 200

WRITER = f"""
import sys
from pipeline.artifacts import atomic_path, write_json
file_target, dir_target, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
print("ready", flush=True)
while True:
    k += 1
    write_json(file_target, {{"version": k, "payload": [k] * {PAYLOAD}}})
    with atomic_path(dir_target, directory=True) as tmp:
        for name in {DIR_FILES!r}:
            with open(tmp / name, "w") as handle:
                for _ in range(16):
                    handle.write(f"{{k}}\\n" * {LINES // 16})
                    handle.flush()
"""


def read_file_version(path: Path) -> int | None:
    """The version of the JSON file, None if absent; asserts it is complete."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    value = json.loads(text)  # a truncated file fails here
    assert value["payload"] == [value["version"]] * PAYLOAD, "a JSON file mixes or lacks versions"
    return value["version"]


def read_dir_version(path: Path) -> int | None:
    """The version of the directory, None if absent (or replaced while it was being read); asserts
    that its files are complete and all of one version. The files are opened relative to one open
    directory, so a read sees one directory even if a newer one is swapped in meanwhile."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return None
    try:
        names = sorted(os.listdir(fd))
        if names != sorted(DIR_FILES) and os.fstat(fd).st_nlink == 0:
            return None  # an old version swapped out and being deleted under our open handle
        assert names == sorted(DIR_FILES), f"directory holds {names}"
        contents = []
        for name in DIR_FILES:
            with open(os.open(name, os.O_RDONLY, dir_fd=fd)) as handle:
                contents.append(handle.read())
    except FileNotFoundError:  # the directory was swapped out and deleted while we read it
        return None
    finally:
        os.close(fd)
    version = int(contents[0].split("\n", 1)[0])
    assert all(text == f"{version}\n" * LINES for text in contents), "a directory mixes or lacks versions"
    return version


def test_sigkilled_writers_leave_old_or_new_complete_outputs_only(tmp_path):
    rng = random.Random(0)
    file_target, dir_target = tmp_path / "metrics.json", tmp_path / "model"
    seen, errors, stop = set(), [], threading.Event()

    def reader() -> None:  # concurrent reads while the writer runs
        while not stop.wait(0.002):  # (a short pause: leave the CPU to the writer)
            try:
                seen.add(read_file_version(file_target))
                seen.add(read_dir_version(dir_target))
            except (AssertionError, ValueError) as err:  # ValueError: a truncated JSON file
                errors.append(repr(err))

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    interrupted, last = 0, None
    try:
        i = 0
        while i < ITERATIONS or (interrupted < MID_WRITE_KILLS and i < MAX_ITERATIONS):
            base = i * 10**6  # this writer's versions are base + 1, base + 2, ...
            # -S: no site packages (the writer needs the standard library only): a quicker start
            with subprocess.Popen([sys.executable, "-S", "-c", WRITER, str(file_target), str(dir_target), str(base)],
                                  cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE) as writer:
                try:
                    assert writer.stdout.readline() == b"ready\n", "the writer did not start"
                    time.sleep(rng.uniform(0.0, 0.08))
                finally:  # killed at that random moment, or at once if the test fails (it never ends by itself)
                    writer.send_signal(signal.SIGKILL)
            leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".")]
            interrupted += bool(leftovers)
            for path in leftovers:  # a killed write's scratch directory (no reader opens it)
                shutil.rmtree(path)
            # After the kill: the old writer's last version or one of this writer's (absent only
            # if none was ever written); the directory complete and of one version, or absent.
            version = read_file_version(file_target)
            assert version == last or (version is not None and version > base), (
                f"JSON file at version {version} after writer {i} (the one before left {last})")
            read_dir_version(dir_target)
            last, i = version, i + 1
    finally:
        stop.set()
        thread.join()
    assert not errors, f"a reader saw a partial output: {errors[:3]}"
    assert interrupted >= MID_WRITE_KILLS, (
        f"only {interrupted} of {i} kills landed inside a write; the test proves little")
    assert len(seen - {None}) >= 2, "the writer never completed a version: nothing was checked"
