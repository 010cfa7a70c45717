"""What a run folder holds and how it is read back: run folders and their lock (`runs`), the
plots, the test forecasts on disk (`predictions_file`), and the Diebold-Mariano test on them
(`significance`).

Imports: errors, io, spec. Imported by tasks, run and everything above them.
"""
