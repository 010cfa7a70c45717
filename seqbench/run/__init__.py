"""One run from spec to run folder (`experiment`): the task prepares its data and model, the
training loop fits it, the task scores it and writes its files; resume and import likewise.

Imports: everything below it (errors, io, spec, data, models, training, artifacts, tasks).
Imported by trained, convert, sweeps and the CLI.
"""
