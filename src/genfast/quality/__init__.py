"""How far an optimised model drifts from its reference: perplexity, KL, agreement, budget."""
