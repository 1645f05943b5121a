import math

import pytest

from genfast.profiling.stats import summarize


def test_summary_of_known_values():
    s = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s.n == 5
    assert s.median == 3.0 and s.p50 == 3.0
    assert s.min == 1.0 and s.max == 100.0
    assert s.p90 == pytest.approx(61.6)  # linear interpolation between 4 and 100
    assert s.mean == pytest.approx(22.0)
    assert s.cv == pytest.approx(math.sqrt(sum((x - 22) ** 2 for x in [1, 2, 3, 4, 100]) / 4) / 22)
    assert s.noisy


def test_constant_samples_are_not_noisy():
    s = summarize([0.5] * 4)
    assert s.cv == 0.0 and not s.noisy


def test_single_sample_and_empty():
    assert summarize([2.0]).cv == 0.0
    with pytest.raises(ValueError):
        summarize([])
