"""Generation: runtimes (prefill / decode steps), sampling, and the decode loop."""
