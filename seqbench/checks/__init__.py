"""Checks that a model is the real thing: the backward pass against finite differences
(`gradcheck`), the causality audit of a spec's model and data pipeline (`audit`), and the
measures of a model against another implementation on the same weights (`parity`).

Imports: errors, io, spec, data, models, training, tasks. Imported by results (their tables) and the CLI.
"""
