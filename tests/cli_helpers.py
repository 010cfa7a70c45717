"""Checks that several CLI test files share: what a folder holds, and a clean one-line error."""


def files_of(folder):
    """Every file under `folder`: its bytes and mtime."""
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    return {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in files}


def one_line_error(result, message):
    """Exit 2, one `error:` line on stderr holding `message`, no traceback."""
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1
