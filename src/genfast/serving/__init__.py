"""Serving: the engine (pure), its async wrapper, the OpenAI-compatible HTTP shell, Ray Serve."""
