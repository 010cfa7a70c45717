"""Grids of runs: the plan and its summary (`sweep`), what one run of a sweep is (`task`), and
where runs execute: worker processes or Ray (`executors`).

Imports: errors, io, spec, training, artifacts, run, results. Imported by report and the CLI.
"""
