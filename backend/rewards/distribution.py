"""The Lorenz curve and Gini coefficient of one epoch's rewards: a pure function of the per-account amounts.

One sort and one cumulative sum over the amounts (numpy float64: wei amounts overflow int64, and a share
needs only float precision). The curve is sampled at `points` evenly spaced shares of recipients, exact at
each sample point (the piecewise-linear Lorenz curve interpolated inside the recipient the point falls in).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np


def distribution(amounts: Iterable[int], *, points: int = 101) -> dict[str, Any]:
    """`{leaves, total, gini, lorenz: [[x, y], ...]}` of `amounts` (wei, non-negative); `points` >= 2."""
    values = sorted(int(a) for a in amounts)
    total = sum(values)
    n = len(values)
    xs = np.linspace(0.0, 1.0, points)
    if n == 0 or total == 0:
        return {"leaves": n, "total": str(total), "gini": 0.0, "lorenz": [[float(x), float(x)] for x in xs]}
    v = np.asarray(values, dtype=np.float64)
    cum = np.concatenate(([0.0], np.cumsum(v)))
    # G = sum_i (2i - n - 1) v_i / (n * total), i = 1..n over amounts sorted ascending
    ranks = np.arange(1, n + 1, dtype=np.float64)
    gini = float(np.dot(2.0 * ranks - n - 1.0, v) / (n * float(total)))
    pos = xs * n
    i = np.minimum(np.floor(pos).astype(np.int64), n - 1)
    ys = (cum[i] + (pos - i) * v[i]) / cum[-1]
    ys[0], ys[-1] = 0.0, 1.0
    return {
        "leaves": n,
        "total": str(total),
        "gini": gini,
        "lorenz": [[round(float(x), 12), float(y)] for x, y in zip(xs, ys, strict=True)],
    }
