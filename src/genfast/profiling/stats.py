"""Summary statistics a skeptic can check: median, percentiles, spread."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass

import numpy as np

NOISY_CV = 0.10
"""A coefficient of variation above this means the machine was too noisy to trust one figure."""


@dataclass(frozen=True)
class Summary:
    """Statistics of one measured quantity, in the unit it was measured in."""

    n: int
    median: float
    mean: float
    p50: float
    p90: float
    p99: float
    min: float
    max: float
    cv: float
    """Coefficient of variation: standard deviation / mean."""

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def noisy(self) -> bool:
        return self.n > 1 and self.cv > NOISY_CV


def summarize(samples: list[float] | np.ndarray) -> Summary:
    """Summarise ``samples`` (at least one)."""
    values = np.asarray(samples, dtype=np.float64)
    if values.size == 0:
        raise ValueError("summarize() needs at least one sample")
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    p50, p90, p99 = (float(v) for v in np.percentile(values, [50, 90, 99]))
    return Summary(n=int(values.size), median=float(statistics.median(values.tolist())), mean=mean,
                   p50=p50, p90=p90, p99=p99, min=float(values.min()), max=float(values.max()),
                   cv=std / mean if mean else 0.0)
