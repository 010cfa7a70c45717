"""Does anything look at the future? A causality audit of a spec's model and data pipeline.

Model: the audit runs the model's one forward pass, the function training and evaluation
call (`model.forward`), with the head reading every step (`forward(x, return_sequence=True)`,
(B, L, O): the forecast from each prefix of the window). On real windows, the forecasts at
steps 0..t must not change when the inputs after step t change. It perturbs the inputs after
several t, in float64, on every backend the model has, and reports the largest change at steps
<= t (a leak above `TOLERANCE`) next to the largest change after t (which shows the perturbation
had an effect). A last check makes sure that the forecast training fits and evaluation scores,
`forward(x)`, is the per-step forecast at the last step, so that the audited path is that one.

Data: the scaler is fit on training rows only (scaler rows within the training rows, and
changing every row after the training split changes neither the scaler nor any training
window); the splits are in time order (train < val < test, by rows and dates); no target
row belongs to two splits; and no window's inputs reach past the end of its own split.
`check_split_record` checks the same order on the `splits` record a run's metrics.json holds.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seqbench.data.sources import LoadedFrame, load_frame
from seqbench.data.windows import SPLITS, Windows, make_windows
from seqbench.errors import RunFailed
from seqbench.models.registry import MODELS, build_model, count_weights, torch_installed
from seqbench.spec import Spec
from seqbench.training.learners import check_fits_in_memory

TOLERANCE = 1e-12  # in float64: a state at step <= t may move by rounding, never by more
MAX_WINDOWS = 8  # real windows per model check

Sequence = Callable[[np.ndarray], np.ndarray]  # x (B, L, F) -> per-step outputs (B, L, ...), float64
Forward = Callable[..., np.ndarray]  # (x (B, L, F), return_sequence) -> (B, O) or (B, L, O), float64


@dataclass
class Check:
    part: str  # model | data
    subject: str  # e.g. "mingru (numpy)", "splits", "scaler"
    check: str  # what was checked
    result: str  # what was measured
    ok: bool


@dataclass
class AuditReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def leaks(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def raise_for_leaks(self) -> None:
        """RunFailed (exit 1) when some check found a leak, naming the first."""
        if self.leaks:
            first = self.leaks[0]
            raise RunFailed(
                f"causality audit: {len(self.leaks)} of {len(self.checks)} checks found a leak "
                f"(first: {first.subject}, {first.check}: {first.result})"
            )


# --- the model -----------------------------------------------------------------------------------


def perturbation_times(seq_len: int, segment: int = 1) -> list[int]:
    """Rows t after which the inputs are perturbed: the start, quarters and the second-to-last row,
    and with segments of S rows the last row of each segment but the last (a step's boundary)."""
    if seq_len < 2:
        return []
    last = seq_len - 2
    ends = set(range(segment - 1, last + 1, segment)) if segment > 1 else set()
    return sorted(({0, seq_len // 4, seq_len // 2, 3 * seq_len // 4, last} | ends) & set(range(last + 1)))


def audit_sequence(
    sequence: Sequence, x: np.ndarray, times: list[int], seed: int = 0, segment: int = 1
) -> list[tuple[int, float, float]]:
    """(t, max |change| at steps <= t, max |change| after t) for each t, perturbing x[:, t+1:].

    With `segment` S, `sequence` has a step per S rows and step j sees rows up to (j + 1) S - 1: the
    steps "at or before row t" are those whose segment ends at or before row t."""
    rng = np.random.default_rng(seed)
    tokens = np.asarray(x).dtype.kind in "iu"  # byte ids: perturbed to other byte values
    x = np.asarray(x, dtype=np.int64 if tokens else np.float64)
    base = sequence(x)  # (B, L, D)
    out = []
    for t in times:
        perturbed = x.copy()
        later = perturbed[:, t + 1 :]
        if tokens:
            later[...] = (later + rng.integers(1, 256, size=later.shape)) % 256  # every byte changes
        else:
            later += rng.normal(0.0, 1.0, size=later.shape)
        states = sequence(perturbed)  # (B, L, D)
        change = np.abs(states - base)
        seen = (t + 1) // segment  # the steps whose segment ends at or before row t
        out.append((t, float(change[:, :seen].max(initial=0.0)), float(change[:, seen:].max(initial=0.0))))
    return out


def model_checks(
    subject: str,
    forward: Forward,
    x: np.ndarray,
    tolerance: float = TOLERANCE,
    every_step: bool = False,
    segment: int = 1,
) -> list[Check]:
    """Checks of a model's forward pass on windows x (B, L, F): one per perturbation time, of the
    per-step forecasts `forward(x, True)`, then that `forward(x, False)` is their last step.

    `every_step`: a language model, whose head reads every step (x (B, L) byte ids): the last check
    is then that `forward(x)` is the per-step output itself, the one training fits. `segment`: the
    model reads S rows per step (model.segment), so a step may see the rows up to its segment's end."""
    L = x.shape[1]
    times = perturbation_times(L, segment)
    checks = []
    if not times:
        checks.append(
            Check("model", subject, "perturb inputs after step t", f"seq_len {L}: no later step", True)
        )
    for t, before, after in audit_sequence(lambda v: forward(v, True), x, times, segment=segment):
        effect = f"after: {after:.1e}" if after > 0 else "after: 0 (no effect)"
        seen = f"steps <= {t}" if segment == 1 else f"segments ending by row {t}"
        checks.append(
            Check(
                "model",
                subject,
                f"perturb inputs after {'step' if segment == 1 else 'row'} {t} of {L}",
                f"max |change| at {seen}: {before:.1e}; {effect}",
                bool(before <= tolerance),
            )
        )
    fitted, audited = forward(x, False), forward(x, True)
    if every_step:
        gap = float(np.max(np.abs(fitted - audited), initial=0.0))
        check, result = "training fits the audited forward", f"max |forward(x) - audited|: {gap:.1e}"
    else:
        gap = float(np.max(np.abs(fitted - audited[:, -1]), initial=0.0))
        check = "the forecast is the audited forward's last step"
        result = f"max |forward(x) - forward(x, return_sequence)[:, -1]|: {gap:.1e}"
    checks.append(Check("model", subject, check, result, bool(gap <= tolerance)))
    return checks


def model_backends(name: str) -> list[str]:
    """The backends `name` has that can run here (torch only when it is installed)."""
    return [b for b in MODELS.get(name, {}) if b != "torch" or torch_installed()]


def build_forward(
    spec: Spec, backend: str, n_features: int, n_outputs: int, vocab_size: int | None = None
) -> Forward:
    """The spec's model on `backend`, in float64 with the seed's initial weights: its forward pass
    (the one training and prediction run) as a function of NumPy arrays."""
    window = (spec.dataset.seq_len, spec.dataset.horizon)
    check_fits_in_memory(spec, count_weights(spec.model, n_features, n_outputs, vocab_size, window))
    model = build_model(spec.model, n_features, n_outputs, spec.seed, np.float64, backend, vocab_size, window)
    if backend == "torch":
        return torch_forward(model)

    def run(x: np.ndarray, return_sequence: bool = False) -> np.ndarray:
        return np.asarray(model.forward(x, return_sequence=return_sequence)[0], dtype=np.float64)

    return run


def torch_forward(model: Any) -> Forward:
    """A Torch model's forward pass as a function of NumPy arrays (no gradients, CPU)."""
    import torch

    def run(x: np.ndarray, return_sequence: bool = False) -> np.ndarray:
        with torch.no_grad():
            dtype = torch.long if x.dtype.kind in "iu" else torch.float64  # byte ids, or features
            y = model(torch.as_tensor(x, dtype=dtype), return_sequence=return_sequence)
        return y.numpy().astype(np.float64)

    return run


# --- the data ------------------------------------------------------------------------------------


def check_split_record(splits: dict[str, Any]) -> list[Check]:
    """The order of a metrics.json `splits` record: scaler rows within train, train < val < test.

    Row ranges are [first, end); `target_rows` (where recorded) must lie inside the split's rows.
    """
    checks = []
    missing = [name for name in ("scaler_fit", *SPLITS) if not isinstance(splits.get(name), dict)]
    if missing:
        return [Check("data", "splits", "splits recorded", f"no record of {', '.join(missing)}", False)]
    rows = {name: tuple(splits[name]["rows"]) for name in ("scaler_fit", *SPLITS)}
    (s0, s1), (t0, t1) = rows["scaler_fit"], rows["train"]
    checks.append(
        Check(
            "data",
            "splits",
            "scaler fit on training rows only",
            f"scaler rows [{s0}, {s1}), train rows [{t0}, {t1})",
            t0 <= s0 <= s1 <= t1,
        )
    )
    order = " < ".join(f"{n} [{rows[n][0]}, {rows[n][1]})" for n in SPLITS)
    in_order = all(rows[a][1] <= rows[b][0] for a, b in itertools.pairwise(SPLITS))
    checks.append(Check("data", "splits", "train < val < test (rows)", order, in_order))
    dates = " < ".join(f"{n} {splits[n]['first_date']}..{splits[n]['last_date']}" for n in SPLITS)
    dates_ok = all(
        str(splits[a]["last_date"]) <= str(splits[b]["first_date"]) for a, b in itertools.pairwise(SPLITS)
    )
    checks.append(Check("data", "splits", "train < val < test (dates)", dates, dates_ok))
    inside = []
    for name in SPLITS:
        target = splits[name].get("target_rows")
        if target is not None:
            inside.append(rows[name][0] <= target[0] <= target[1] <= rows[name][1])
    checks.append(
        Check(
            "data",
            "splits",
            "each split's targets within its rows",
            "recorded target rows inside their split" if inside else "no target rows recorded",
            all(inside),
        )
    )
    return checks


def check_windows(windows: Windows) -> list[Check]:
    """No target row in two splits; no window's inputs past the end of its own split."""
    horizon = windows.horizon
    targets = {}
    past_end = []
    seq_len = windows.train.x.shape[1]
    for name in SPLITS:
        origin = windows.split(name).origin
        targets[name] = set((origin[:, None] + np.arange(1, horizon + 1)).ravel().tolist())
        start, end = windows.split_rows[name]
        first_input = origin - seq_len + 1
        if len(origin) and (origin.max() >= end or first_input.min() < 0):
            past_end.append(name)
        if any(row < start or row >= end for row in targets[name]):
            past_end.append(f"{name} targets")
    shared = {f"{a}/{b}": len(targets[a] & targets[b]) for i, a in enumerate(SPLITS) for b in SPLITS[i + 1 :]}
    overlap = {pair: n for pair, n in shared.items() if n}
    return [
        Check(
            "data",
            "windows",
            "no target row in two splits",
            ", ".join(f"{p}: {n} rows" for p, n in overlap.items()) or "disjoint",
            not overlap,
        ),
        Check(
            "data",
            "windows",
            "inputs and targets inside their split's past",
            f"outside: {', '.join(past_end)}" if past_end else "every window",
            not past_end,
        ),
    ]


def check_scaler_ignores_later_rows(loaded: LoadedFrame, spec: Spec, windows: Windows) -> Check:
    """Change every row after the training split: the scaler and the training windows stay the same."""
    train_end = windows.split_rows["train"][1]
    frame = loaded.frame.copy()
    frame.iloc[train_end:] = frame.iloc[train_end:].to_numpy() * 1.7 + 3.0  # stays positive for log_return
    changed = make_windows(frame, loaded.features, loaded.targets, spec.dataset, loaded.info["label"])
    same = (
        np.array_equal(changed.target_center, windows.target_center)
        and np.array_equal(changed.target_scale, windows.target_scale)
        and np.array_equal(changed.train.x, windows.train.x)
        and np.array_equal(changed.train.y, windows.train.y)
    )
    result = "scaler and training windows unchanged" if same else "the scaler or training windows changed"
    return Check("data", "scaler", f"fit ignores rows from {train_end} on", result, same)


# --- the whole audit -------------------------------------------------------------------------------


def audit_spec(spec: Spec, data_dir: Path = Path("data"), backends: list[str] | None = None) -> AuditReport:
    """Audit the data pipeline and the spec's model on each of `backends` (default: every one here)."""
    from seqbench.tasks.forecast import split_record

    if spec.task == "lm":
        return audit_lm(spec, data_dir, backends)
    loaded = load_frame(spec.dataset, data_dir)
    windows = make_windows(loaded.frame, loaded.features, loaded.targets, spec.dataset, loaded.info["label"])
    report = AuditReport()
    report.checks += check_split_record(split_record(windows))
    report.checks += check_windows(windows)
    report.checks.append(check_scaler_ignores_later_rows(loaded, spec, windows))
    x = windows.test.x[:MAX_WINDOWS]  # (B, L, F) real windows
    n_in, n_out = windows.train.x.shape[-1], windows.train.y.shape[-1]  # channels independent: 1, horizon
    for backend in backends or model_backends(spec.model.name):
        forward = build_forward(spec, backend, n_in, n_out)
        subject = f"{spec.model.name} ({backend})"
        report.checks += model_checks(subject, forward, x, segment=spec.model.segment)
    return report


def audit_lm(spec: Spec, data_dir: Path = Path("data"), backends: list[str] | None = None) -> AuditReport:
    """A language model's audit: its parts in order with no shared byte, training windows inside
    the training part, and the model's logits at step t blind to the bytes after t."""
    from seqbench.tasks import lm

    loaded = lm.load_text(spec, data_dir)
    report = AuditReport()
    (t0, t1), (v0, v1), (s0, s1) = (loaded.parts[name] for name in ("train", "val", "test"))
    ordered = t0 == 0 and t1 == v0 and v1 == s0 and s1 <= len(loaded.data)
    spans = f"train [{t0}, {t1}), val [{v0}, {v1}), test [{s0}, {s1})"
    report.checks.append(Check("data", "parts", "train < val < test, no shared byte", spans, ordered))
    train, _ = lm.training_data(spec, loaded)
    ids = train.epoch_ids(np.random.default_rng(spec.seed), True)
    last = int(ids.max()) + spec.dataset.seq_len  # the last byte an epoch's windows read (a target)
    inside = last < t1
    report.checks.append(
        Check(
            "data", "training windows", "read only training bytes", f"last byte read: {last} (< {t1})", inside
        )
    )
    held = loaded.part(loaded.held_out)
    L = spec.dataset.seq_len
    n = min(MAX_WINDOWS, max(1, len(held) // L))
    x = held[: n * L].reshape(n, L).astype(np.int64)  # (B, L) real held-out bytes
    for backend in backends or model_backends(spec.model.name):
        forward = build_forward(spec, backend, lm.VOCAB, lm.VOCAB, vocab_size=lm.VOCAB)
        report.checks += model_checks(f"{spec.model.name} ({backend})", forward, x, every_step=True)
    return report
