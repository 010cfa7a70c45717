"""What several CLI test files share: invoking the CLI, what a folder holds, a clean one-line error,
a text to learn. (The `workdir` fixture, an empty folder to run in, is in conftest.py.)"""

from typing import Any

import numpy as np
from typer.testing import CliRunner, Result

READ_UP_TO = 2**26  # a larger file (a sparse 3 GiB one) is known by its size, not read


def invoke(*args: object, **options: Any) -> Result:
    """`seqbench ARGS...` run in this process (each argument made a string); `options` go to
    CliRunner.invoke (env, input, prog_name). stdout and stderr are kept apart."""
    from seqbench.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], **options)


def files_of(folder):
    """Every file under `folder`: its bytes (its size when over READ_UP_TO) and mtime."""
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    return {path: (_content(path), path.stat().st_mtime_ns) for path in files}


def _content(path):
    size = path.stat().st_size
    return path.read_bytes() if size <= READ_UP_TO else size


def one_line_error(result, message):
    """Exit 2, one `error:` line on stderr holding `message`, no traceback."""
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1


RUN_FIGURES = ("loss_curve_figure", "predictions_figure", "horizon_figure")  # a run folder's pictures
FIGURE_BUILDERS = (*RUN_FIGURES, "val_curves_figure")


def no_pictures(monkeypatch, built: bool = False, builders: tuple[str, ...] = FIGURE_BUILDERS):
    """A stand-in PNG where each picture goes: no figure is built or drawn (drawing is ~1 s a
    figure, building its axes ~0.1 s a run). With `built=True` each figure is still built from its
    data, not drawn (the fuzz tests: hostile data must not break the plotting code). With
    `builders`, only those figures are left out; every other one is built and drawn as always."""
    from pathlib import Path

    from seqbench.artifacts import plots

    draw, draw_the_others = plots._write, builders != FIGURE_BUILDERS

    def write(fig, path, tight=True):
        if fig is not None and draw_the_others:
            draw(fig, path, tight)
        else:
            Path(path).write_bytes(PNG_SIGNATURE)

    monkeypatch.setattr(plots, "_write", write)
    for builder in () if built else builders:
        monkeypatch.setattr(plots, builder, lambda *args, **kwargs: None)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_text(n: int = 24_000, seed: int = 0) -> bytes:
    """Words from a small vocabulary in a seeded order: structure beyond the bytes' frequencies."""
    rng = np.random.default_rng(seed)
    words = ["the", "king", "queen", "shall", "speak", "now", "and", "thou", "art", "my", "lord", "good"]
    out, total = [], 0
    while total < n:
        line = " ".join(rng.choice(words, size=rng.integers(3, 9))).capitalize() + ".\n"
        out.append(line)
        total += len(line)
    return "".join(out).encode()[:n]
