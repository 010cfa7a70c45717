"""What the CI tests share: the examples folder, a run folder's path (invoking the CLI: cli_helpers)."""

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "ci"


def only_run(folder: Path) -> Path:
    (run_dir,) = [path for path in folder.iterdir() if path.is_dir()]
    return run_dir


def copy_run(run_dir: Path, to: Path) -> Path:
    """A copy of a run folder under `to`/NAME/RUN_ID, to edit."""
    target = to / run_dir.parent.name / run_dir.name
    shutil.copytree(run_dir, target)
    return target


REQUIRED = {  # the JUnit XML schema's required attributes (Ant's JUnit.xsd, as Jenkins and GitLab read it)
    "testsuite": {"name", "tests", "failures", "errors", "time", "timestamp", "hostname"},
    "testcase": {"name", "classname", "time"},
    "failure": {"message", "type"},
}


def check_junit(path):
    """Parse the file and check the schema's required elements and attributes; the test cases."""
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert REQUIRED["testsuite"] <= set(suite.attrib)
    tags = [child.tag for child in suite]
    assert tags[0] == "properties" and tags[-2:] == ["system-out", "system-err"]
    cases = suite.findall("testcase")
    assert int(suite.get("tests")) == len(cases)
    failures = [failure for case in cases for failure in case.findall("failure")]
    assert int(suite.get("failures")) == len(failures) and suite.get("errors") == "0"
    for case in cases:
        assert REQUIRED["testcase"] <= set(case.attrib)
    for failure in failures:
        assert REQUIRED["failure"] <= set(failure.attrib) and failure.text == failure.get("message")
    return cases
