"""Verdicts (one judged expectation or gate) and how CI systems show them: JUnit XML and a
markdown step summary (GitHub Actions' `GITHUB_STEP_SUMMARY`).

JUnit XML as the common schema (Ant's, read by Jenkins, GitLab and the GitHub reporters) requires
it: `testsuites` > `testsuite` (name, tests, failures, errors, skipped, time, timestamp, hostname)
> `properties`, `testcase` (name, classname, time) with a `failure` (message, type) when it failed,
`system-out`, `system-err`.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from seqbench.artifacts.runs import append_line, check_output
from seqbench.errors import SeqbenchError, shown
from seqbench.io import atomic_write_text

STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"


@dataclass(frozen=True)
class Verdict:
    """One judged check: an expectation on a run, a run's completion, or a regression gate."""

    kind: str  # "expect", "run" or "gate": the JUnit classname's prefix
    run: str  # the run's label, e.g. smoke/20261205-093808-fc22bc
    name: str  # what was checked, e.g. "skill > 0"
    passed: bool
    message: str  # the value, the bound, by how much

    def line(self) -> str:
        """The one line the terminal shows."""
        return f"{self.kind} {'ok' if self.passed else 'FAILED'}: {self.run}: {self.message}"


def failed(verdicts: Sequence[Verdict]) -> list[Verdict]:
    return [verdict for verdict in verdicts if not verdict.passed]


def junit_xml(verdicts: Sequence[Verdict], suite: str) -> str:
    """The verdicts as one JUnit test suite: a test case each, a `failure` where it failed."""
    n_failed = len(failed(verdicts))
    counts = {"tests": str(len(verdicts)), "failures": str(n_failed), "errors": "0", "skipped": "0"}
    root = ET.Element("testsuites", {"name": "seqbench", **counts, "time": "0"})
    testsuite = ET.SubElement(
        root,
        "testsuite",
        {
            "name": suite,
            **counts,
            "time": "0",
            "timestamp": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
            "hostname": socket.gethostname() or "localhost",
        },
    )
    ET.SubElement(testsuite, "properties")
    for verdict in verdicts:
        case = ET.SubElement(
            testsuite,
            "testcase",
            {"name": f"{verdict.kind}: {verdict.name}", "classname": f"seqbench.{verdict.run}", "time": "0"},
        )
        if verdict.passed:
            ET.SubElement(case, "system-out").text = verdict.message
        else:
            failure = ET.SubElement(case, "failure", {"message": verdict.message, "type": verdict.kind})
            failure.text = verdict.message
    ET.SubElement(testsuite, "system-out")
    ET.SubElement(testsuite, "system-err")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def check_junit_path(path: Path | None) -> None:
    """`--junit FILE` may be written (checked before a run, so a bad path fails fast): never in a run
    folder, never onto a folder. An existing report is replaced: CI writes it anew each job."""
    if path is not None:
        check_output(path, force=True, example="seqbench-junit.xml")


def write_junit(path: Path, verdicts: Sequence[Verdict], suite: str) -> None:
    check_junit_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, junit_xml(verdicts, suite))


def markdown_verdicts(verdicts: Sequence[Verdict]) -> str:
    """A markdown list: one line per verdict, a mark first."""
    return "".join(
        f"- {'✅' if v.passed else '❌'} **{v.kind}** `{v.name}` ({v.run}): {v.message}\n" for v in verdicts
    )


def append_step_summary(title: str, table_md: str, verdicts: Sequence[Verdict]) -> Path | None:
    """Append the results table and the verdicts to `$GITHUB_STEP_SUMMARY` when it is set (GitHub
    Actions shows that file on the job's page); returns the path written, None when it is unset."""
    where = os.environ.get(STEP_SUMMARY_ENV)
    if not where:
        return None
    text = f"### {title}\n\n{table_md.rstrip()}\n\n{markdown_verdicts(verdicts)}\n"
    try:
        append_line(Path(where), text)
    except OSError as exc:
        raise SeqbenchError(
            f"{STEP_SUMMARY_ENV}={shown(where, 200)}: cannot append ({exc.strerror or exc})"
        ) from None
    return Path(where)
