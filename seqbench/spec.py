"""The experiment spec: pydantic models, the short form, and `--set` overrides.

A spec is YAML in one of two forms. The canonical form has the sections
`dataset`, `model` and `train`; the short form lets a first spec be four lines
(`model: mingru`, `dataset: AAPL`, `lr: 0.01`, `hidden_size: 64`). Both are
expanded to one `Spec`, which is the single source of truth for a run and is
saved, with every default filled in, as the run's `spec.yaml`.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
import re
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from seqbench.errors import SpecError, brief, shown
from seqbench.io import FileRefused, read_regular

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
FLOAT_TEXT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")  # 1e-3, 3E5, .5 (not quoted)


MAX_SEED = 2**32 - 1  # what every backend's generator takes
MAX_SEEDS = 1000  # `seeds: N` runs N seeds one after another
MAX_VALUES = 10_000  # a spec is a few dozen keys; more (e.g. a YAML alias bomb) is refused
MAX_DEPTH = 20  # nesting of mappings and lists
MAX_SPEC_BYTES = 2**20  # a spec is a few hundred bytes; a larger file is refused before it is read


class _Section(BaseModel):
    # allow_inf_nan=False: .nan and .inf are refused for every float key (lr, split, ...)
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class RowSplit(_Section):
    """Chronological train / val / test by row counts (the ETT protocol: 8640 / 2880 / 2880).

    Rows after train + val + test are not used. With `step` (a pandas frequency such as h) the
    counts are of rows at that step, and a file with a finer step takes proportionally more rows
    (the ETT protocol on 15-minute files: 4x), so one spec runs on ETTh1 and ETTm1 unchanged.
    """

    train: int = Field(ge=1)
    val: int = Field(ge=1)
    test: int = Field(ge=1)
    step: str | None = None

    @field_validator("step")
    @classmethod
    def _a_frequency(cls, step: str | None) -> str | None:
        import pandas as pd

        if step is None:
            return step
        try:
            pd.Timedelta(pd.tseries.frequencies.to_offset(step))
        except (ValueError, TypeError):
            raise ValueError(f"'{shown(step)}' is not a fixed pandas step; e.g. h, 15min, D") from None
        return step


class DatasetSpec(_Section):
    source: Literal["yahoo", "csv", "builtin", "synthetic", "text"] = "builtin"
    name: str | None = None  # builtin or synthetic dataset name; text: a corpus (tinyshakespeare, enwik8)
    ticker: str | None = None  # yahoo
    start: dt.date | None = None  # yahoo download range, or a filter on any source
    end: dt.date | None = None
    interval: str = "1d"  # yahoo
    path: str | None = None  # csv, or text: any file, read as bytes
    date_column: str | None = None  # csv: overrides auto-detection
    date_format: str | None = None  # csv: strftime format of the dates ("%d/%m/%Y %H:%M"), unix, unix_ms
    sep: str | None = None  # csv: field separator (default ","), e.g. ";" or "\t"
    decimal: str = "."  # csv: decimal mark, e.g. "," for 3,14
    timezone: Literal["local", "utc"] = "local"  # csv: times with UTC offsets: the local time, or UTC
    length: int = Field(2000, ge=10)  # synthetic: number of steps
    data_seed: int = Field(0, ge=0, le=MAX_SEED)  # synthetic: generator seed (independent of the run's seed)
    freq: str = "D"  # synthetic: the step between rows, a pandas frequency: D, B, h, 15min, ...
    features: list[str] | None = None  # input columns; default: the target column(s)
    target: str | list[str] | None = None  # column(s) to predict; default: the source's own
    seq_len: int = Field(20, ge=1)
    horizon: int = Field(1, ge=1)  # predict target at t+1 .. t+horizon
    # chronological train / val / test fractions (lm: .9/.05/.05), or row counts {train:, val:, test:}
    split: tuple[float, float, float] | RowSplit = (0.7, 0.15, 0.15)
    scaler: Literal["minmax", "standard", "none"] = "minmax"  # fit on the training rows only
    transform: Literal["none", "diff", "log_return"] = "none"  # model sees changes, not levels
    # window: relative to each window's last value; instance: RevIN, each window's per-channel mean and std
    normalize: Literal["global", "window", "instance"] = "global"
    channels: Literal["mixed", "independent"] = "mixed"  # independent: each channel a univariate series
    season: int | None = Field(None, ge=1)  # seasonal persistence's period in rows; default from the dates
    fill: Literal["none", "ffill", "drop"] = "none"  # what to do with missing values

    @field_validator("split", mode="before")
    @classmethod
    def _row_counts(cls, split: Any) -> Any:
        """A mapping is row counts: exactly train, val and test, each a whole number >= 1."""
        if not isinstance(split, dict):
            return split
        if not {"train", "val", "test"} <= set(split) <= {"train", "val", "test", "step"}:
            got = sorted(map(str, split))
            raise ValueError(f"row counts need exactly the keys train, val and test (and step), got {got}")
        counts = [split[key] for key in ("train", "val", "test")]
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in counts):
            raise ValueError(f"every split row count must be a whole number >= 1, got {split}")
        return RowSplit(**split)

    @field_validator("split")
    @classmethod
    def _split_sums_to_one(
        cls, split: tuple[float, float, float] | RowSplit
    ) -> tuple[float, float, float] | RowSplit:
        if isinstance(split, RowSplit):
            return split
        if split[0] <= 0 or split[1] <= 0 or split[2] < 0:  # a test part of 0 only for task lm (Spec)
            raise ValueError(f"every split fraction must be > 0, got {list(split)}")
        if abs(sum(split) - 1.0) > 1e-6:
            raise ValueError(f"split fractions must sum to 1, got {list(split)} (sum {sum(split):g})")
        return split

    @field_validator("freq")
    @classmethod
    def _known_frequency(cls, freq: str) -> str:
        import pandas as pd

        try:
            pd.tseries.frequencies.to_offset(freq)
        except ValueError:
            raise ValueError(
                f"'{shown(freq)}' is not a pandas frequency; e.g. D (daily), B (business days), h, 15min"
            ) from None
        return freq

    @field_validator("sep", "decimal")
    @classmethod
    def _one_character(cls, mark: str | None) -> str | None:
        if mark is not None and (len(mark) != 1 or mark in '\n\r"' or mark.isalnum()):
            raise ValueError(f"must be one character such as ',', ';', '\\t' or '|', got {mark!r}")
        return mark

    @field_validator("date_format")
    @classmethod
    def _strftime_format(cls, fmt: str | None) -> str | None:
        """unix, unix_ms, or a format that pandas can parse dates with (its directives checked now,
        on one placeholder value, not when the file is read)."""
        import pandas as pd

        example = "e.g. '%Y%m%d' or '%d/%m/%Y %H:%M'"
        if fmt is None or fmt in ("unix", "unix_ms"):
            return fmt
        if "%" not in fmt:
            raise ValueError(f"'{shown(fmt)}' is not a strftime format; {example}")
        try:  # a value that does not fit is NaT here; a bad directive or a stray % raises
            pd.to_datetime(pd.Series(["0"], dtype=object), format=fmt, errors="coerce")
        except ValueError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "not a format"
            reason = reason.removesuffix(f" in format '{fmt}'")
            message = f"'{shown(fmt)}' is not a strftime format ({shown(reason)}); {example}"
            raise ValueError(message) from None
        return fmt

    @model_validator(mode="after")
    def _source_has_what_it_needs(self) -> DatasetSpec:
        if self.source == "text":  # a path is read as it is; a name alone is a corpus to download
            if self.path in (None, "") and self.name in (None, ""):
                raise ValueError("source 'text' needs dataset.path (a file) or dataset.name (a corpus)")
            return self
        needs = {"yahoo": "ticker", "csv": "path", "builtin": "name", "synthetic": "name"}
        key = needs[self.source]
        if getattr(self, key) in (None, ""):
            raise ValueError(f"source '{self.source}' needs dataset.{key}")
        return self

    @property
    def targets(self) -> list[str] | None:
        if self.target is None:
            return None
        return [self.target] if isinstance(self.target, str) else list(self.target)

    @property
    def label(self) -> str:
        """A short name for tables: the ticker, built-in name or CSV file stem."""
        if self.source == "yahoo":
            return str(self.ticker)
        if self.source == "text" and self.name:
            return str(self.name)
        if self.source in ("csv", "text") and self.path is not None:
            return Path(str(self.path)).stem
        return str(self.name)


class MambaOptions(_Section):
    """Mamba's own keys: `model.mamba.*`."""

    state_size: int = Field(16, ge=1)  # N, the SSM state per channel
    expand: int = Field(2, ge=1)  # E, inner width = E * hidden_size
    conv_kernel: int = Field(4, ge=1)  # causal depthwise conv width
    dt_rank: int | Literal["auto"] = "auto"  # rank of the delta projection; auto = ceil(D / 16)
    discretization: Literal["delta_b", "zoh"] = "delta_b"  # B_bar = delta B (official code) | exact ZOH

    @field_validator("dt_rank")
    @classmethod
    def _positive_rank(cls, rank: int | str) -> int | str:
        if isinstance(rank, int) and rank < 1:
            raise ValueError("must be 'auto' or an integer >= 1")
        return rank


class MinGRUOptions(_Section):
    """minGRU's own keys: `model.mingru.*`."""

    variant: Literal["paper", "log_space"] = "paper"  # section 3.1, biases | appendix B.3, minGRU-pytorch
    expansion: float = Field(1.0, gt=0)  # log_space: inner width int(expansion * hidden_size), W_out if != 1

    @model_validator(mode="after")
    def _expansion_needs_log_space(self) -> MinGRUOptions:
        if self.variant == "paper" and self.expansion != 1:
            raise ValueError("expansion != 1 needs variant: log_space (the paper's minGRU has none)")
        return self


# a model's own options, in a section named after it (only that model's section is kept)
MODEL_OPTIONS: dict[str, type[_Section]] = {"mamba": MambaOptions, "mingru": MinGRUOptions}
OPTION_KEYS = {key: name for name, section in MODEL_OPTIONS.items() for key in section.model_fields}
# model options added after config ids were first made: left out of the id at their default. (The
# default discretisation changed with it: a mamba run of an older seqbench, zoh, shares its id.)
LATER_MODEL_DEFAULTS = {
    "discretization": "delta_b", "variant": "paper", "expansion": 1.0,
    "segment": 1, "decoder": "last", "linear_skip": False, "dropout": 0.0, "gate_init": "default",
}  # fmt: skip


class ModelSpec(_Section):
    name: str = "mingru"  # mingru | gru | mamba (see seqbench.models.registry)
    backend: Literal["numpy", "torch"] = "numpy"
    hidden_size: int = Field(128, ge=1)
    n_layers: int = Field(1, ge=1)
    # a forecast model's input and head (seqbench/models/numpy/forecasting.py), for every model:
    segment: int = Field(1, ge=1)  # rows per step: a window is read as seq_len / segment steps
    decoder: Literal["last", "segments"] = "last"  # head on the last state | a step per output segment
    linear_skip: bool = False  # add a linear map of the whole window to the forecast (RLinear + the model)
    dropout: float = Field(0.0, ge=0, lt=1)  # on what the head reads, in training only
    gate_init: Literal["default", "chrono"] = "default"  # chrono: long-memory gates (Tallec & Ollivier)
    mamba: MambaOptions | None = None  # mamba's options; absent for the other models
    mingru: MinGRUOptions | None = None  # minGRU's options; absent for the other models

    @model_validator(mode="before")
    @classmethod
    def _options_in_their_section(cls, raw: Any) -> Any:
        """The model's own section, filled with its defaults; another model's section is dropped.

        Flat option keys (`model.state_size: 16`, the form before sections, as older spec.yaml
        files have them on every model) go into the section; on a model without them they are
        dropped, as they never changed its numbers.
        """
        if not isinstance(raw, dict):
            return raw
        raw = dict(raw)
        flat = {key: raw.pop(key) for key in list(raw) if key in OPTION_KEYS}
        name = raw.get("name", "mingru")
        for section in MODEL_OPTIONS:
            given = raw.get(section)
            if section != name:
                raw[section] = None  # (None, not absent: an assignment of model.name validates this too)
                continue
            if isinstance(given, BaseModel):
                given = given.model_dump()
            if given is not None and not isinstance(given, dict):
                raise ValueError(f"model.{section} must be a mapping of its options, got {brief(given)}")
            own = {k: v for k, v in flat.items() if OPTION_KEYS[k] == section}
            raw[section] = {**own, **(given or {})}
        return raw

    @model_validator(mode="after")
    def _sections_validated(self) -> ModelSpec:
        """After `spec.model.name = "mamba"` (an assignment validates only that field), the section
        the before-validator made is still a dict: validate it here."""
        for section, options in MODEL_OPTIONS.items():
            value = getattr(self, section)
            if isinstance(value, dict):
                object.__setattr__(self, section, options.model_validate(value))
        return self

    @property
    def options(self) -> dict[str, Any]:
        """The model's own options (its section's keys), e.g. Mamba's state_size; {} for the others."""
        section = getattr(self, self.name, None) if self.name in MODEL_OPTIONS else None
        return section.model_dump() if section is not None else {}

    @field_validator("name")
    @classmethod
    def _known_model(cls, name: str) -> str:
        from seqbench.models.registry import model_names

        if name not in model_names():
            raise ValueError(f"unknown model '{shown(name)}'; choose one of: {', '.join(model_names())}")
        return name


class TrainSpec(_Section):
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(32, ge=1)
    # windows per forward pass when predicting, at most (fewer for long windows: 32 K window steps a pass)
    eval_batch_size: int = Field(1024, ge=1)  # memory only
    optimizer: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = Field(1e-3, gt=0)
    schedule: Literal["constant", "cosine"] = "constant"  # lr after warm-up (see optim.scheduled_lr)
    warmup_epochs: int = Field(0, ge=0)  # linear warm-up from lr / (warmup_epochs + 1) up to lr
    momentum: float = Field(0.9, ge=0, lt=1)  # sgd
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float | None = Field(1.0, ge=0)  # global-norm clipping; 0 or null = off
    loss: Literal["mse", "mae", "mse+mae"] = "mse"  # a forecast's training and validation loss
    patience: int = Field(5, ge=0)  # early stopping on validation loss; 0 = off
    min_delta: float = Field(0.0, ge=0)
    dtype: Literal["float32", "float64"] = "float32"
    shuffle: bool = True
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"  # torch: auto picks cuda, then mps, else cpu
    threads: int | None = Field(None, ge=1)  # torch CPU threads; null = torch's default
    batches_per_epoch: int = Field(100, ge=1)  # lm: an epoch is this many batches of random windows


class Spec(_Section):
    name: str = "run"  # run-name prefix; default: the spec's file name
    seed: int = Field(0, ge=0, le=MAX_SEED)
    seeds: list[int] | None = None  # one run per seed (instead of `seed`); an integer N means 0 .. N-1
    expect: list[str] | None = None  # judged after the run, e.g. ["skill > 0"] (seqbench.ci.expect)
    task: Literal["forecast", "lm"] = "forecast"  # a text dataset implies lm
    dataset: DatasetSpec
    model: ModelSpec = ModelSpec()
    train: TrainSpec = TrainSpec()

    @model_validator(mode="before")
    @classmethod
    def _task_defaults(cls, raw: Any) -> Any:
        """A text dataset means task lm; lm's own defaults where the spec does not set them."""
        if not isinstance(raw, dict) or not isinstance(raw.get("dataset"), dict):
            return raw
        dataset = raw["dataset"]
        if "task" not in raw and dataset.get("source") == "text":
            raw = {**raw, "task": "lm"}
        if raw.get("task") == "lm":
            raw = {**raw, "dataset": {**LM_DATASET_DEFAULTS, **dataset}}
        return raw

    @model_validator(mode="after")
    def _task_fits_the_data(self) -> Spec:
        text = self.dataset.source == "text"
        if self.task == "lm" and not text:
            raise ValueError(
                "task lm reads a text file: set dataset.source: text and dataset.path: FILE.txt "
                "(or dataset.name: tinyshakespeare)"
            )
        if self.task == "forecast" and text:
            raise ValueError("a text dataset is for task: lm (a forecast needs a series: csv, builtin, ...)")
        m = self.model
        forecast_only = m.segment != 1 or m.decoder != "last" or m.linear_skip or m.dropout
        if self.task == "lm" and (forecast_only or m.gate_init != "default"):
            raise ValueError(
                "model.segment, model.decoder, model.linear_skip, model.dropout and model.gate_init are "
                "for a forecast; leave them out for task lm"
            )
        if self.task == "lm" and self.train.loss != "mse":
            raise ValueError("train.loss is a forecast's (mse, mae, mse+mae); an LM trains on cross-entropy")
        if m.gate_init == "chrono" and m.mingru is not None and m.mingru.variant == "log_space":
            raise ValueError("model.gate_init chrono sets minGRU's b_z, which variant log_space has not")
        seq_len = self.dataset.seq_len
        if self.task == "forecast" and seq_len % m.segment:
            fits = max(d for d in range(1, min(m.segment, seq_len) + 1) if seq_len % d == 0)
            raise ValueError(
                f"model.segment {m.segment} must divide dataset.seq_len {seq_len} (a window is "
                f"read as seq_len / segment steps of segment rows each); e.g. segment {fits}"
            )
        if self.task == "forecast" and m.decoder == "segments" and self.dataset.horizon % m.segment:
            raise ValueError(
                f"model.decoder 'segments' decodes the horizon in segments of model.segment rows: "
                f"{m.segment} must divide dataset.horizon {self.dataset.horizon}"
            )
        if self.task == "lm" and isinstance(self.dataset.split, RowSplit):
            raise ValueError("dataset.split: row counts are for a forecast; task lm takes three fractions")
        fractions = not isinstance(self.dataset.split, RowSplit)
        if self.task == "forecast" and fractions and self.dataset.split[2] <= 0:
            split = list(self.dataset.split)
            raise ValueError(
                f"dataset.split: every split fraction must be > 0 for a forecast (a test part of 0 is "
                f"for task: lm), got {split}"
            )
        return self

    @field_validator("seeds", mode="before")
    @classmethod
    def _count_as_seeds(cls, seeds: Any) -> Any:
        if isinstance(seeds, int) and not isinstance(seeds, bool):
            if not 1 <= seeds <= MAX_SEEDS:
                raise ValueError(f"a number of seeds must be between 1 and {MAX_SEEDS}, got {seeds}")
            return list(range(seeds))
        return seeds

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int] | None) -> list[int] | None:
        if seeds is None:
            return None
        if not seeds:
            raise ValueError("must list at least one seed, e.g. [0, 1, 2] (or leave it out and use seed)")
        if len(seeds) > MAX_SEEDS:
            raise ValueError(f"at most {MAX_SEEDS} seeds, got {len(seeds)}")
        if any(not 0 <= seed <= MAX_SEED for seed in seeds):
            raise ValueError(f"seeds must be between 0 and {MAX_SEED}, got {brief(seeds)}")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct, got {seeds}")
        return seeds

    @model_validator(mode="after")
    def _seed_or_seeds(self) -> Spec:
        if self.seeds is not None and "seed" in self.model_fields_set:
            raise ValueError(
                "give either seed (one run) or seeds (one run per seed), not both; "
                "--seed on the command line replaces seeds"
            )
        return self

    @field_validator("expect", mode="before")
    @classmethod
    def _one_expectation(cls, expect: Any) -> Any:
        """A string is one expectation (`train` parses them: seqbench.ci.expect)."""
        return [expect] if isinstance(expect, str) else expect

    @field_validator("name", mode="before")
    @classmethod
    def _number_as_name(cls, name: Any) -> Any:
        return str(name) if isinstance(name, int) and not isinstance(name, bool) else name

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        if not NAME_PATTERN.match(name) or ".." in name:
            raise ValueError(
                f"'{name}' is not a valid run name: use letters, digits, '.', '_' and '-' "
                "(at most 64, no path separators)"
            )
        return name


# task lm's dataset defaults: bytes in windows of 256, nanoGPT-like contiguous split
LM_DATASET_DEFAULTS = {"seq_len": 256, "split": [0.9, 0.05, 0.05]}

SECTIONS: dict[str, type[_Section]] = {"dataset": DatasetSpec, "model": ModelSpec, "train": TrainSpec}
TOP_LEVEL_KEYS = ("name", "seed", "seeds", "task", "expect")


def valid_keys() -> list[str]:
    """Every canonical dotted key, e.g. `train.lr`."""
    keys = list(TOP_LEVEL_KEYS)
    for section, model in SECTIONS.items():
        keys += [f"{section}.{field}" for field in model.model_fields if field not in MODEL_OPTIONS]
    keys += [f"model.{name}.{key}" for name, options in MODEL_OPTIONS.items() for key in options.model_fields]
    return keys


def _short_key_map() -> dict[str, str]:
    """Leaf names that identify one section's key, e.g. `lr` -> `train.lr`."""
    owners: dict[str, list[str]] = {}
    for section, model in SECTIONS.items():
        for field in model.model_fields:
            owners.setdefault(field, []).append(f"{section}.{field}")
    for key, name in OPTION_KEYS.items():  # `state_size: 8` at the top: the model's option
        owners.setdefault(key, []).append(f"model.{name}.{key}")
    return {leaf: full[0] for leaf, full in owners.items() if len(full) == 1 and leaf not in TOP_LEVEL_KEYS}


def check_size(value: Any, where: str) -> None:
    """Refuse a spec that expands to more than MAX_VALUES values or nests deeper than MAX_DEPTH.

    YAML aliases share one object, so a 400-byte "alias bomb" expands to billions of values only
    when something walks it; counting with a memo per object finds that without walking it.
    """
    sizes: dict[int, int] = {}

    def size(node: Any, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise SpecError(
                f"{where}: the spec nests deeper than {MAX_DEPTH} levels; a spec has a few sections"
            )
        if not isinstance(node, dict | list):
            return 1
        if id(node) not in sizes:
            children = list(node.values()) if isinstance(node, dict) else node
            sizes[id(node)] = 1 + sum(size(child, depth + 1) for child in children)
            if sizes[id(node)] > MAX_VALUES:
                raise SpecError(
                    f"{where}: the spec expands to more than {MAX_VALUES:,} values (YAML aliases?); "
                    "a spec is a few dozen keys"
                )
        return sizes[id(node)]

    size(value, 0)


def _unknown_key_error(key: str, where: str) -> SpecError:
    candidates = valid_keys() + list(_short_key_map())
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    if not close and "." in key:
        leaf = key.rsplit(".", 1)[1]
        close = [m for m in difflib.get_close_matches(leaf, candidates, n=3, cutoff=0.6) if "." in m][:1]
    hint = f"; did you mean '{_short_key_map().get(close[0], close[0])}'?" if close else ""
    return SpecError(f"{where}: unknown key '{shown(key)}'{hint}")


TEXT_SUFFIXES = (".txt", ".text", ".md", ".xml", ".html", ".json", ".py")  # short form: text files

SOURCE_EXAMPLES = {
    "csv": "dataset.path: FILE.csv (or --set dataset=FILE.csv)",
    "yahoo": "dataset.ticker: AAPL (or --set dataset=AAPL)",
    "builtin": "dataset.name (seqbench datasets lists them)",
    "synthetic": "dataset.name: sine",
    "text": "dataset.path: FILE.txt (or --set dataset=FILE.txt)",
}


def expand_dataset_shorthand(value: str, data_dir: Path) -> dict[str, Any]:
    """`dataset: X` -> a built-in name, a path to a CSV file, or a (cached) Yahoo ticker."""
    from seqbench.data.builtin import BUILTINS

    if value in BUILTINS:
        return {"source": "builtin", "name": value}
    if value.lower() in SOURCE_EXAMPLES:  # `--set dataset=csv`: a source, not a ticker named CSV
        raise SpecError(
            f"dataset: '{value}' is a source, not a dataset; set dataset.source: {value.lower()} "
            f"and {SOURCE_EXAMPLES[value.lower()]}"
        )
    from seqbench.data.text import is_corpus

    if is_corpus(value):
        return {"source": "text", "name": value}
    if value.lower().endswith(TEXT_SUFFIXES):
        return {"source": "text", "path": value}
    if value.lower().endswith(".csv") or "/" in value or Path(value).is_file():
        return {"source": "csv", "path": value}
    return {"source": "yahoo", "ticker": value}


def expand_short_form(raw: dict[str, Any], data_dir: Path, where: str) -> dict[str, Any]:
    """Turn a short-form spec into the canonical nested form (canonical input passes through)."""
    short = _short_key_map()
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in SECTIONS:
            if key == "model" and isinstance(value, str):
                value = {"name": value}
            elif key == "dataset" and isinstance(value, str):
                value = expand_dataset_shorthand(value, data_dir)
            elif value is None:
                value = {}
            if not isinstance(value, dict):
                raise SpecError(f"{where}: '{key}' must be a mapping of keys (or a name), got {value!r}")
            section = out.setdefault(key, {})
            for sub_key in value:
                legacy = key == "model" and sub_key in OPTION_KEYS  # flat model options (older specs)
                if sub_key not in SECTIONS[key].model_fields and not legacy:
                    raise _unknown_key_error(f"{key}.{sub_key}", where)
            section.update(value)
        elif key in TOP_LEVEL_KEYS:
            out[key] = value
        elif key in short:
            _set_dotted(out, short[key], value)
        else:
            raise _unknown_key_error(str(key), where)
    return out


class SpecLoader(yaml.SafeLoader):
    """The safe loader without YAML's timestamps: a date stays text, and the spec's own validation
    parses it (so `2021-02-29` is an error naming its key, not a crash of the YAML reader)."""

    yaml_implicit_resolvers: ClassVar[dict[Any, list[Any]]] = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


def parse_yaml(text: str) -> Any:
    """YAML text through the safe loader (see SpecLoader)."""
    return yaml.load(text, Loader=SpecLoader)  # SpecLoader is a SafeLoader


def parse_override(item: str) -> tuple[str, Any]:
    """`train.lr=3e-3` -> ("train.lr", 0.003); the value is parsed as a YAML scalar."""
    if "=" not in item:
        raise SpecError(f"--set '{shown(item)}': expected KEY=VALUE, e.g. --set train.lr=3e-3")
    key, text = item.split("=", 1)
    key = key.strip()
    try:
        value = parse_yaml(text) if text.strip() else None
        check_size(value, f"--set {shown(key)}")
    except (yaml.YAMLError, ValueError, RecursionError):  # e.g. 2021-02-29: validation says what is wrong
        value = text
    if isinstance(value, str) and FLOAT_TEXT.match(text.strip()):  # YAML 1.1 reads 1e-3 as a string
        value = float(value)
    return key, value


def apply_overrides(canonical: dict[str, Any], overrides: list[str], data_dir: Path) -> dict[str, Any]:
    """Apply `--set key=value` items to a canonical spec dict (short keys allowed)."""
    short = _short_key_map()
    for item in overrides:
        key, value = parse_override(item)
        if key in SECTIONS:
            patch = expand_short_form({key: value}, data_dir, f"--set {shown(item)}")
            if key == "dataset" and isinstance(value, str):
                canonical[key] = {**_keep_window_keys(canonical.get(key, {})), **patch[key]}
            else:
                canonical.setdefault(key, {}).update(patch[key])
            continue
        key = short.get(key, key)
        if key in TOP_LEVEL_KEYS:
            canonical[key] = value
            if key in ("seed", "seeds"):  # one replaces the other: `--seed 3` runs only seed 3
                canonical.pop("seeds" if key == "seed" else "seed", None)
            continue
        section, _, leaf = key.partition(".")
        if section == "model" and leaf in OPTION_KEYS:  # model.state_size: the model's own option
            key = f"model.{OPTION_KEYS[leaf]}.{leaf}"
        elif key not in valid_keys():  # section.leaf, or model.mamba.state_size
            raise _unknown_key_error(key, f"--set {shown(item)}")
        _set_dotted(canonical, key, value)
    return canonical


def _set_dotted(canonical: dict[str, Any], key: str, value: Any) -> None:
    """canonical['model']['mamba']['state_size'] = value for key `model.mamba.state_size`."""
    *path, leaf = key.split(".")
    node = canonical
    for part in path:
        child = node.get(part)
        node[part] = child = dict(child) if isinstance(child, dict) else {}
        node = child
    node[leaf] = value


def _keep_window_keys(dataset: dict[str, Any]) -> dict[str, Any]:
    """When `--set dataset=X` swaps the source, keep the windowing settings."""
    source_keys = {
        "source", "name", "ticker", "path", "date_column", "date_format", "sep", "decimal", "timezone",
        "length", "data_seed", "freq",
    }  # fmt: skip
    return {k: v for k, v in dataset.items() if k not in source_keys}


def read_yaml(path: Path) -> Any:
    """Read YAML with the safe loader; a missing file or bad YAML is a one-line SpecError."""
    try:
        text = read_regular(path, MAX_SPEC_BYTES, "a spec file").decode("utf-8")
    except FileNotFoundError:
        raise SpecError(f"spec file not found: {path}") from None
    except FileRefused as exc:
        raise SpecError(f"cannot read spec file: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read spec file {path}: {exc}") from None
    try:
        raw = parse_yaml(text)
    except RecursionError:
        raise SpecError(
            f"{path}: the spec nests deeper than YAML can read; a spec has a few sections"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        tag = re.search(r"constructor for the tag '([^']*)'", problem)
        if tag:  # e.g. !!python/object/apply:os.system: refused by the safe loader, never run
            name = tag.group(1).replace("tag:yaml.org,2002:", "!!")
            raise SpecError(
                f"{where}: YAML tag '{name}' is not allowed; a spec is plain YAML (read with a safe loader)"
            ) from None
        raise SpecError(f"{where}: malformed YAML: {problem}") from None
    check_size(raw, str(path))
    return raw


UNION_TAGS = {"tuple[float, float, float]", "RowSplit"}  # pydantic's names of dataset.split's two forms


def build_spec(canonical: dict[str, Any], where: str) -> Spec:
    """Validate a canonical dict; the first problem becomes a one-line SpecError."""
    try:
        return Spec.model_validate(canonical)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(p) for p in error["loc"] if str(p) not in UNION_TAGS) or "spec"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "is required"
        got = error.get("input")
        quiet = error["type"] in ("missing", "value_error") or isinstance(got, dict)
        given = "" if quiet else f" (got {brief(got)})"
        if not error["loc"] and re.match(r"^[a-z_]+\.[a-z_]+: ", message):  # a spec-wide check names its key
            raise SpecError(f"{where}: {message}{given}") from None
        raise SpecError(f"{where}: {key}: {message}{given}") from None


def load_spec(path: str | Path, overrides: list[str] | None = None, data_dir: str | Path = "data") -> Spec:
    """Read a spec file, expand the short form, apply overrides and validate."""
    path, data_dir = Path(path), Path(data_dir)
    raw = read_yaml(path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: a spec must be a mapping of keys, got {type(raw).__name__}")
    canonical = expand_short_form(raw, data_dir, str(path))
    canonical.setdefault("name", re.sub(r"[^A-Za-z0-9._-]", "-", path.stem) or "run")
    canonical = apply_overrides(canonical, overrides or [], data_dir)
    if "dataset" not in canonical:
        raise SpecError(f"{path}: dataset: is required (e.g. 'dataset: sp500')")
    return build_spec(canonical, str(path))


def dump_spec(spec: Spec) -> str:
    """The resolved spec as YAML, every default filled in, in the canonical key order.

    A single run's spec (as its run folder saves it) has `seed` and no `seeds`; a spec with
    `seeds` has no `seed`, so that either reads back as it was.
    """
    exclude: dict[str, Any] = {"seeds" if spec.seeds is None else "seed": True}
    if spec.expect is None:
        exclude["expect"] = True
    absent = {name: True for name in MODEL_OPTIONS if getattr(spec.model, name) is None}
    if absent:
        exclude["model"] = absent
    return yaml.safe_dump(spec.model_dump(mode="json", exclude=exclude), sort_keys=False)


def seed_specs(spec: Spec) -> list[Spec]:
    """One spec per run: each of `seeds` as the `seed` of a single run, or the spec itself."""
    if spec.seeds is None:
        return [spec]
    return [spec.model_copy(update={"seed": seed, "seeds": None}) for seed in spec.seeds]


CONFIG_ID_EXCLUDES = {"name", "seed", "seeds", "expect"}  # expect: a check, not a setting
# dataset keys that only the named source reads
SOURCE_KEYS = {
    "yahoo": {"ticker", "interval"},
    "csv": {"path", "date_column", "date_format", "sep", "decimal", "timezone"},
    "builtin": {"name"},
    "synthetic": {"name", "length", "data_seed"},
    "text": {"name", "path"},
}
# keys only one task reads
TASK_KEYS = {
    ("train", "batches_per_epoch"): "lm", ("dataset", "horizon"): "forecast", ("train", "loss"): "forecast"
}  # fmt: skip
# forecast-only dataset keys (lm reads bytes: no columns, scaling or dates)
FORECAST_DATASET_KEYS = {
    "features", "target", "horizon", "scaler", "transform", "normalize", "fill", "start", "end", "interval",
    "channels", "season",
}  # fmt: skip
# dataset and train keys added after config ids were first made: left out at their default, so older
# ids hold
LATER_DEFAULTS = {("dataset", "channels"): "mixed", ("dataset", "season"): None, ("train", "loss"): "mse"}
# keys that never change a number: memory, threads, and the synthetic series' calendar
NEVER_CHANGE_A_NUMBER = {("train", "eval_batch_size"), ("train", "threads"), ("dataset", "freq")}


def result_keys(spec: Spec) -> dict[str, Any]:
    """The resolved spec without name, seed, seeds and every key that cannot change this run's numbers.

    Left out: another source's dataset keys, model options the model does not take (Mamba's
    state_size on a GRU), momentum under Adam, min_delta without early stopping, and
    NEVER_CHANGE_A_NUMBER.
    """
    from seqbench.models.registry import model_class, model_names

    canonical = spec.model_dump(mode="json", exclude=CONFIG_ID_EXCLUDES)
    dataset, model, train = canonical["dataset"], canonical["model"], canonical["train"]
    for source, keys in SOURCE_KEYS.items():
        if source != spec.dataset.source:
            for key in keys - SOURCE_KEYS[spec.dataset.source]:
                dataset.pop(key, None)
    for name in MODEL_OPTIONS:  # the model's own options, flat (as config ids were made before sections)
        model.update(model.pop(name, None) or {})
    all_options = {key for name in model_names() for key in model_class(name, "numpy").options}
    for key in all_options - set(model_class(spec.model.name, "numpy").options):
        model.pop(key, None)
    for key, default in LATER_MODEL_DEFAULTS.items():  # older ids hold at these options' defaults
        if model.get(key) == default:
            model.pop(key, None)
    if spec.train.optimizer != "sgd":
        train.pop("momentum")
    if not spec.train.patience:
        train.pop("min_delta")
    for (section, key), task in TASK_KEYS.items():
        if spec.task != task:
            canonical[section].pop(key, None)
    if spec.task == "lm":
        for key in FORECAST_DATASET_KEYS:
            dataset.pop(key, None)
    for (section, key), default in LATER_DEFAULTS.items():
        if canonical[section].get(key, default) == default:
            canonical[section].pop(key, None)
    for section, key in NEVER_CHANGE_A_NUMBER:
        canonical[section].pop(key, None)
    return canonical


def config_id(spec: Spec) -> str:
    """What runs of the same config share: a hash of `result_keys(spec)`.

    Runs with equal config ids differ only in their seed (and name, and keys that change no
    number), so `compare` puts them in one row with mean +- std over seeds.
    """
    text = json.dumps(result_keys(spec), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
