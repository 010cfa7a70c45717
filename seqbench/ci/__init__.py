"""seqbench in a user's CI: expectations on a run, a regression gate against a reference, and
what CI systems show (JUnit XML, GitHub's step summary).

- `expect`: `--expect 'skill > 0'` and a spec's `expect:` list, judged on finished runs.
- `reference`: a run's scores and test losses in a small, diff-able file (`seqbench reference`).
- `gate`: `compare --against REF --fail-if-worse 2%`: worse by the margin AND significant (DM test).
- `outputs`: verdicts as JUnit XML and as a markdown step summary.

Imports: errors, io, artifacts, results. Imported by commands and the CLI.
"""
