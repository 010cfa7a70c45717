"""Training: the loop that fits any learner (`loop`), the learner a spec builds (`learners`), the
checkpoint a run resumes from, Ctrl-C and SIGTERM (`signals`), and the progress bar.

Imports: errors, io, spec, data, models. Imported by tasks and everything above them.
"""
