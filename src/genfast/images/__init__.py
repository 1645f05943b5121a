"""Image generators (diffusion UNets): loading, sampling, quality, profiling and optimisation."""
