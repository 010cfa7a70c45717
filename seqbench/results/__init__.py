"""Runs side by side: compare's rows and rendering (`compare`), one row per config over seeds
(`groups`), and the terminal tables (`tables`).

Imports: errors, io, spec, artifacts, checks. Imported by sweeps, report, ci and the CLI.
"""
