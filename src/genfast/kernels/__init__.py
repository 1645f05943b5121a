"""genfast's own CPU kernels: C sources built on first use into PyTorch operators (``ops.py``)."""
