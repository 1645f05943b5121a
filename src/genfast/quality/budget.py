"""The quality budget a user states, parsed from strings like ``2%`` or ``0.95``."""

from __future__ import annotations

from dataclasses import dataclass

from genfast.errors import QualityBudgetError


def parse_fraction(text: str | float | None, name: str) -> float | None:
    """``"2%"`` -> 0.02, ``"0.95"`` -> 0.95; None stays None."""
    if text is None or isinstance(text, (int, float)):
        return None if text is None else float(text)
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise QualityBudgetError(f"{name} {text!r} is not a number or a percentage.") from None
    if value < 0:
        raise QualityBudgetError(f"{name} cannot be negative, got {text!r}.")
    return value


@dataclass(frozen=True)
class QualityBudget:
    """Limits on drift from the reference; a limit left as None is not checked."""

    max_ppl_increase: float | None = 0.02
    """Largest allowed relative perplexity increase (0.02 = 2 %)."""
    min_top1_agreement: float | None = None
    """Smallest allowed share of positions where both models' most likely next token agree."""
    max_kl: float | None = None
    """Largest allowed mean next-token KL(reference || candidate), in nats."""
    min_greedy_agreement: float | None = None
    """Smallest allowed share of greedy-generated tokens identical to the reference's."""
    version: int = 1

    @classmethod
    def parse(cls, max_ppl_increase: str | None = "2%", min_top1_agreement: str | None = None,
              max_kl: str | None = None, min_greedy_agreement: str | None = None) -> QualityBudget:
        budget = cls(
            max_ppl_increase=parse_fraction(max_ppl_increase, "--max-ppl-increase"),
            min_top1_agreement=parse_fraction(min_top1_agreement, "--min-top1-agreement"),
            max_kl=parse_fraction(max_kl, "--max-kl"),
            min_greedy_agreement=parse_fraction(min_greedy_agreement, "--min-greedy-agreement"),
        )
        for name, value in (("--min-top1-agreement", budget.min_top1_agreement),
                            ("--min-greedy-agreement", budget.min_greedy_agreement)):
            if value is not None and value > 1:
                raise QualityBudgetError(f"{name} is a share between 0 and 1 (or 0%..100%), got {value}.")
        return budget

    def check(self, figures: dict[str, float | None]) -> list[str]:
        """Return one line per limit broken by ``figures`` (empty: the budget is met)."""
        rules = (("ppl_increase", self.max_ppl_increase, "max", "perplexity increase"),
                 ("top1_agreement", self.min_top1_agreement, "min", "top-1 agreement"),
                 ("kl", self.max_kl, "max", "mean KL"),
                 ("greedy_agreement", self.min_greedy_agreement, "min", "greedy agreement"))
        failures = []
        for key, limit, kind, label in rules:
            value = figures.get(key)
            if limit is None or value is None:
                continue
            if (kind == "max" and value > limit) or (kind == "min" and value < limit):
                failures.append(f"{label} {value:.4g} is {'above' if kind == 'max' else 'below'} the limit {limit:.4g}")
        return failures
