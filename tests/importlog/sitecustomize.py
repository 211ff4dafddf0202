"""Records which repository modules each process loads, for the DVC deps check (tests/depcheck.py).

Python imports ``sitecustomize`` at start-up from ``PYTHONPATH``; the test session puts this folder
there (tests/conftest.py), so it runs in the stage processes that ``dvc repro`` starts and in the Ray
workers of the test's Ray. It does nothing unless ``GAN_LAB_IMPORT_LOG`` names a directory. Then
every module named ``pipeline...`` or ``_common`` (the stages' helper) that the process loads is
appended to ``$GAN_LAB_IMPORT_LOG/<driver pid>/<pid>.txt`` as it is loaded (line-buffered, so a
killed worker's record survives), after a first line with the process's argv.

The *driver* is the stage process: any process that is not a Ray worker sets
``GAN_LAB_IMPORT_DRIVER`` to its own pid; the stage's Ray workers receive that variable through the
runtime env the launcher gives them (every ``GAN_LAB_*`` variable is forwarded), so their records
land beside their stage's.
"""

import json
import os
import sys


def _install() -> None:
    log_dir = os.environ.get("GAN_LAB_IMPORT_LOG")
    if not log_dir:
        return
    is_ray_worker = "ray/_private/workers" in (sys.argv[0] if sys.argv else "")
    if not is_ray_worker or "GAN_LAB_IMPORT_DRIVER" not in os.environ:
        os.environ["GAN_LAB_IMPORT_DRIVER"] = str(os.getpid())
    driver = os.environ["GAN_LAB_IMPORT_DRIVER"]
    state = {"handle": None}

    def record(name: str) -> None:
        if state["handle"] is None:
            folder = os.path.join(log_dir, driver)
            os.makedirs(folder, exist_ok=True)
            state["handle"] = open(os.path.join(folder, f"{os.getpid()}.txt"), "a", buffering=1)
            state["handle"].write(json.dumps(sys.argv) + "\n")
        state["handle"].write(name + "\n")

    class Recorder:
        """A meta-path finder that finds nothing: Python asks it only for modules not loaded yet."""

        @staticmethod
        def find_spec(fullname, path=None, target=None):
            if fullname == "_common" or fullname.split(".")[0] == "pipeline":
                record(fullname)
            return None

    sys.meta_path.insert(0, Recorder())


_install()
