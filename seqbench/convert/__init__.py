"""Weights that travel: seqbench's models to and from the layouts of the reference implementations.

One module per peer: `mambapy` (mambapy and mamba_ssm, for Mamba), `mingru_pytorch`
(lucidrains/minGRU-pytorch, for minGRU's `variant: log_space`); `common` holds the checking code
they share, and `files` the weights files and run folders `seqbench convert` reads and writes.

Imports: errors, io, models, spec, artifacts, run. Imported by the CLI.
"""

from seqbench.convert.common import ConversionError
from seqbench.convert.mambapy import from_mambapy, load_mambapy, to_mamba_ssm, to_mambapy
from seqbench.convert.mingru_pytorch import from_mingru_pytorch, load_mingru_pytorch, to_mingru_pytorch

__all__ = [
    "ConversionError",
    "from_mambapy",
    "from_mingru_pytorch",
    "load_mambapy",
    "load_mingru_pytorch",
    "to_mamba_ssm",
    "to_mambapy",
    "to_mingru_pytorch",
]
