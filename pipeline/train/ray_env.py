"""Environment Ray reads at import time; import this module before ``import ray``.

With no ``RAY_ADDRESS`` the pipeline starts an embedded single-node Ray. On Linux Ray would bind it
to the machine's network address; ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` keeps it on loopback.
With ``RAY_ADDRESS`` set we join that cluster and leave Ray's networking alone.
"""

import os

if not os.environ.get("RAY_ADDRESS"):
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
