"""Checks that a model is the real thing: the backward pass against finite differences
(`gradcheck`) and the causality audit of a spec's model and data pipeline (`audit`).

Imports: errors, io, spec, data, models, training, tasks. Imported by results (their tables) and the CLI.
"""
