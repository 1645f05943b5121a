"""Bootstrap confidence intervals over evaluation units (windows or prompts)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95 % bootstrap confidence interval."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict:
        return {"value": self.value, "ci95": [self.low, self.high]}

    def excludes(self, x: float) -> bool:
        """Whether ``x`` lies outside the interval (the difference is not chance)."""
        return x < self.low or x > self.high


def bootstrap(stat: Callable[[np.ndarray], float], n_units: int, resamples: int = 1000,
              seed: int = 0) -> Estimate:
    """Estimate ``stat(indices)`` and its 95 % interval by resampling units with replacement."""
    rng = np.random.default_rng(seed)
    value = stat(np.arange(n_units))
    draws = [stat(rng.integers(0, n_units, n_units)) for _ in range(resamples)]
    low, high = np.percentile(draws, [2.5, 97.5])
    return Estimate(float(value), float(low), float(high))
