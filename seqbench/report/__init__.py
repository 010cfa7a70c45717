"""`seqbench report`: runs and sweep folders on one self-contained HTML page (`write`), from
the page's template (`page`).

Imports: errors, io, spec, artifacts, results, sweeps. Imported by the CLI.
"""
