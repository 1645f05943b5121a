"""genfast."""
