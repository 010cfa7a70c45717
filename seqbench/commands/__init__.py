"""What a command does between its parsed options and its output, where that is more than one call:
`train` (one run, seeds, resume; expectations judged after) and `compare` (runs found, checked,
grouped, sorted, printed; the regression gate).

Imports: everything below the CLI. Imported by the CLI only.
"""
