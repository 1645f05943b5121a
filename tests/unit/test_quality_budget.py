import numpy as np
import pytest

from genfast.errors import QualityBudgetError
from genfast.quality.budget import QualityBudget, parse_fraction
from genfast.quality.stats import bootstrap


@pytest.mark.parametrize("text, value", [("2%", 0.02), ("0.95", 0.95), (" 10% ", 0.10), (None, None)])
def test_parse_fraction(text, value):
    assert parse_fraction(text, "x") == (pytest.approx(value) if value is not None else None)


@pytest.mark.parametrize("args, match", [
    (dict(max_ppl_increase="two percent"), "not a number or a percentage"),
    (dict(max_ppl_increase="-1%"), "cannot be negative"),
    (dict(min_top1_agreement="1.5"), "share between 0 and 1"),
])
def test_unparsable_budgets(args, match):
    with pytest.raises(QualityBudgetError, match=match):
        QualityBudget.parse(**args)


def test_budget_check_names_each_broken_limit():
    budget = QualityBudget.parse("2%", "0.95", "0.1", "0.9")
    assert budget.check({"ppl_increase": 0.01, "top1_agreement": 0.99, "kl": 0.01, "greedy_agreement": 1.0}) == []
    failures = budget.check({"ppl_increase": 0.05, "top1_agreement": 0.5, "kl": 0.2, "greedy_agreement": 0.1})
    assert len(failures) == 4
    assert failures[0].startswith("perplexity increase 0.05 is above the limit 0.02")


def test_bootstrap_interval_contains_the_mean_and_shrinks_with_data():
    rng = np.random.default_rng(0)
    small, large = rng.normal(1.0, 1.0, 20), rng.normal(1.0, 1.0, 2000)
    a = bootstrap(lambda i: float(small[i].mean()), len(small), resamples=300)
    b = bootstrap(lambda i: float(large[i].mean()), len(large), resamples=300)
    assert a.low <= a.value <= a.high and b.low <= b.value <= b.high
    assert (b.high - b.low) < (a.high - a.low)
    assert b.excludes(0.0) and not b.excludes(1.0)
