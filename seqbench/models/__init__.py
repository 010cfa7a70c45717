"""The models: minGRU, GRU and Mamba, one file per model per backend (`numpy/`, `torch/`), the
forecast heads they share, the registry that builds them by name, the NumPy optimisers (`optim`)
and the checked reading of weight files (`weights_file`).

Imports: errors, io. Imported by everything above it.
"""
