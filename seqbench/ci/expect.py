"""Expectations on a finished run: `--expect 'skill > 0'`, or a spec's `expect:` list.

An expectation is `METRIC OP NUMBER`, OP one of < <= > >= ==. METRIC is a column of `seqbench
compare` (rmse, skill, skill_best, dm_p, scaled_mse, bits_per_byte, ngram_bpb, ...) or a dotted
path to a number in metrics.json (scaled.model.mse, baselines.linear.rmse, test.nats). With
several seeds the value judged is the mean over the seeds' runs.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from seqbench.ci.outputs import Verdict
from seqbench.errors import SeqbenchError, shown
from seqbench.results.compare import TASK_COLUMNS, TEXT_COLUMNS, compare_rows, run_label

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, ">=": operator.ge, "==": operator.eq, "<": operator.lt, ">": operator.gt,
}  # fmt: skip
PATTERN = re.compile(r"^\s*([A-Za-z_][\w./-]*)\s*(<=|>=|==|<|>)\s*(\S+)\s*$")
# metrics.json's top-level keys that hold numbers, or sections of them, by task (tests check them
# against a real run's metrics.json): a dotted name must start with one of these
METRICS_KEYS = {
    "forecast": (
        "params", "epochs_run", "best_epoch", "train_seconds", "seconds_per_epoch", "samples_per_second",
        "val_seconds", "config", "test", "test_model_space", "test_scaled", "val", "baselines",
        "baseline_settings", "test_windows", "scaled", "significance", "splits", "data",
    ),
    "lm": (
        "params", "epochs_run", "best_epoch", "train_seconds", "seconds_per_epoch", "samples_per_second",
        "val_seconds", "config", "test", "val", "baselines", "data", "samples",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Expectation:
    """`metric op bound`, e.g. skill > 0."""

    metric: str
    op: str
    bound: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"

    def holds(self, value: float) -> bool:
        return OPERATORS[self.op](value, self.bound)


def parse_expectation(text: Any) -> Expectation:
    """'skill > 0' -> Expectation; a SeqbenchError (exit 2) for anything else."""
    match = PATTERN.match(text) if isinstance(text, str) else None
    bound = _finite(match.group(3)) if match else None
    if match is None or bound is None:
        raise SeqbenchError(
            f"expectation '{shown(text)}' is not METRIC OP NUMBER with OP one of < <= > >= ==; "
            "e.g. --expect 'skill > 0' or --expect 'scaled.model.mse <= 0.38'"
        )
    return Expectation(match.group(1), match.group(2), bound)


def parse_expectations(texts: Sequence[Any], task: str) -> list[Expectation]:
    """Parse each, and check its metric names one of `task`'s (before a run, so that a typo costs
    no training); a dotted path is checked again on the finished run's metrics.json."""
    expectations = [parse_expectation(text) for text in texts]
    for expectation in expectations:
        top = expectation.metric.split(".")[0]
        if expectation.metric not in short_names(task) and not (
            "." in expectation.metric and top in METRICS_KEYS[task]
        ):
            raise _unknown(expectation.metric, task, [*short_names(task), *METRICS_KEYS[task]])
    return expectations


def short_names(task: str) -> list[str]:
    """The numeric columns of `seqbench compare` for `task`'s runs."""
    return [column for column in TASK_COLUMNS[task] if column not in TEXT_COLUMNS]


def judge(expectations: Sequence[Expectation], runs: Sequence[dict[str, Any]], task: str) -> list[Verdict]:
    """One verdict per expectation on `runs` (metrics.json dicts of one config: the mean over them)."""
    if len(runs) == 1:
        label = run_label(runs[0])
    else:
        label = f"{run_label(runs[0]).split('/')[0]} (mean of {len(runs)} seeds)"
    verdicts = []
    for expectation in expectations:
        values = [metric_value(run, expectation.metric, task) for run in runs]
        if any(value is None for value in values):
            missing = [run_label(run) for run, value in zip(runs, values, strict=True) if value is None]
            message = f"{expectation}: no value in {', '.join(missing)} (status {runs[0].get('status')})"
            verdicts.append(Verdict("expect", label, str(expectation), False, message))
            continue
        value = math.fsum(values) / len(values)  # type: ignore[arg-type]
        verdicts.append(
            Verdict("expect", label, str(expectation), expectation.holds(value), describe(expectation, value))
        )
    return verdicts


def describe(expectation: Expectation, value: float) -> str:
    """'skill > 0: 0.2134 (passes by 0.2134)' or 'scaled.model.mse <= 0.38: 0.412, above the bound by
    0.032 (8.4%)'."""
    gap = value - expectation.bound
    relative = f" ({abs(gap) / abs(expectation.bound):.1%})" if expectation.bound else ""
    if expectation.holds(value):
        by = f", passes by {abs(gap):.4g}" if expectation.op != "==" else ""
        return f"{expectation}: {value:.6g}{by}"
    side = "above" if gap > 0 else "below" if gap < 0 else "at"
    return f"{expectation}: {value:.6g}, {side} the bound by {abs(gap):.4g}{relative}"


def metric_value(metrics: dict[str, Any], name: str, task: str) -> float | None:
    """`name`'s value in a run: its compare column, or the number at a dotted path of metrics.json.

    None when the run has no value there (a diverged run's null test scores); a SeqbenchError when
    the path is not in metrics.json at all, naming the nearest one that is.
    """
    if name in short_names(task):
        (row,) = compare_rows([metrics])
        return row[name]
    node: Any = metrics
    for part in name.split("."):
        if node is None:
            return None
        if not isinstance(node, dict) or part not in node:
            raise _unknown(name, task, list(numeric_paths(metrics)))
        node = node[part]
    if node is None:
        return None
    if isinstance(node, bool) or not isinstance(node, int | float):
        raise SeqbenchError(
            f"expectation metric '{shown(name)}' is {shown(type(node).__name__)} in metrics.json, "
            "not a number"
        )
    return _finite(node)


def numeric_paths(node: Any, prefix: str = "") -> Iterator[str]:
    """The dotted paths of metrics.json that lead to numbers."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from numeric_paths(value, f"{prefix}{key}.")
    elif isinstance(node, int | float) and not isinstance(node, bool):
        yield prefix.rstrip(".")


def _unknown(name: str, task: str, candidates: list[str]) -> SeqbenchError:
    near = difflib.get_close_matches(name, candidates, n=1, cutoff=0.5)
    hint = f"did you mean '{near[0]}'? " if near else ""
    return SeqbenchError(
        f"unknown metric '{shown(name)}' in an expectation for {task} runs; {hint}"
        f"use a compare column ({', '.join(short_names(task)[-8:])}, ...) or a dotted path into metrics.json "
        "(e.g. test.rmse)"
    )


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
