"""seqbench: honest, reproducible experiments with small sequence models on time series."""

__version__ = "0.1.0"
