"""genfast's own CPU kernels: small C sources compiled on first use with the machine's compiler."""
