"""Environment Ray reads at import time; import this module before ``import ray``.

With no ``RAY_ADDRESS`` the pipeline starts an embedded single-node Ray. On Linux Ray would bind it
to the machine's network address; ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` keeps it on loopback.
With ``RAY_ADDRESS`` set we join that cluster and leave Ray's networking alone.
"""

import os

if not os.environ.get("RAY_ADDRESS"):
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

# Ray Train V2's controller collects reports by polling the workers every 2 s, and a worker's
# `ray.train.report` waits while its previous report is still uncollected: with an epoch of ~0.5 s
# that capped training at one epoch per 2 s. Polling every 0.1 s removes the cap (measured:
# docs/dcgan.md). Exported here so the controller actor inherits it; launcher.py also passes it in
# the job's runtime_env for clusters joined through RAY_ADDRESS.
TRAIN_POLL_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
os.environ.setdefault(TRAIN_POLL_ENV, "0.1")
