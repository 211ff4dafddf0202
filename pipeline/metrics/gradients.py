"""The minimax vs non-saturating comparison from a run's per-step history (REFERENCE.md).

With ``compare_losses`` every step logs G's gradient norm under both generator losses on the same
fakes and the same D (``grad_norm/G_minimax``, ``grad_norm/G_nonsaturating``). Early in training,
while D rejects fakes confidently, the saturating loss log(1 - D(G(z))) has almost no gradient
(Goodfellow et al. 2014; Arjovsky & Bottou 2017). We report the mean of each norm over the first
tenth of the steps and their ratio, non-saturating / minimax.
"""

from __future__ import annotations

import numpy as np

MINIMAX, NONSATURATING = "grad_norm/G_minimax", "grad_norm/G_nonsaturating"


def early_gradient_ratio(history: list[dict[str, float]], fraction: float = 0.1) -> dict[str, float]:
    """Mean of both gradient norms over the first ``fraction`` of the steps, and NS / minimax.

    Returns {} when the history lacks the two columns (a run without ``compare_losses``); the ratio
    is None if the minimax norm is exactly 0.
    """
    early = history[:max(1, int(len(history) * fraction))]
    if not early or not all(MINIMAX in row and NONSATURATING in row for row in early):
        return {}
    minimax = float(np.mean([row[MINIMAX] for row in early]))
    nonsaturating = float(np.mean([row[NONSATURATING] for row in early]))
    return {"grad_norm_minimax_early": minimax, "grad_norm_nonsaturating_early": nonsaturating,
            "grad_norm_ratio_early": nonsaturating / minimax if minimax > 0 else None}
