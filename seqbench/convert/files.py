"""What `seqbench convert` reads and writes: peers' state-dict files, and seqbench run folders.

A file is a dictionary of named tensors: `torch.save(state_dict)` (.pt/.pth, read with
`torch.load(..., weights_only=True)` only) or `np.savez` (.npz, read with allow_pickle=False).
Besides the peer's blocks it may hold seqbench's own weights, which no peer has, under seqbench's
names and layout (linear weights (in, out)): OWN below. Export writes them, import reads them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seqbench.convert.common import ConversionError, params_of
from seqbench.convert.mambapy import from_mambapy, to_mamba_ssm, to_mambapy
from seqbench.convert.mingru_pytorch import from_mingru_pytorch, to_mingru_pytorch
from seqbench.errors import SeqbenchError, shown
from seqbench.io import atomic_path, file_sha256
from seqbench.models.weights_file import NPZ_SUFFIX, WeightsFile, check_weights, open_weights, torch_module

Arrays = dict[str, np.ndarray]
OWN = ("embed.weight", "embed.bias", "head.weight", "head.bias")  # seqbench's names, its layout
TORCH_SUFFIXES = (".pt", ".pth")


@dataclass(frozen=True)
class Peer:
    """A reference implementation's layout: the seqbench model it holds, and the two maps."""

    model: str
    export: Callable[[Any], Arrays]
    load: Callable[[Any, Any], Arrays]  # (state, model) -> every weight of model, by seqbench name


PEERS = {
    "mambapy": Peer("mamba", to_mambapy, from_mambapy),
    "mamba_ssm": Peer("mamba", to_mamba_ssm, from_mambapy),
    "mingru_pytorch": Peer("mingru", to_mingru_pytorch, from_mingru_pytorch),
}
PEER_OF_MODEL = {"mamba": "mambapy", "mingru": "mingru_pytorch"}  # import: mamba_ssm's prefix is read too


def peer(name: str) -> Peer:
    if name not in PEERS:
        raise SeqbenchError(f"unknown peer '{shown(name)}'; choose one of: {', '.join(PEERS)}")
    return PEERS[name]


def peer_for_model(model_name: str) -> str:
    if model_name not in PEER_OF_MODEL:
        have = ", ".join(f"{m} ({p})" for m, p in PEER_OF_MODEL.items())
        raise SeqbenchError(
            f"model '{model_name}' has no peer layout to convert from; models that do: {have}"
        )
    return PEER_OF_MODEL[model_name]


def read_state(path: Path) -> WeightsFile:
    """The named tensors in a .pt/.pth or .npz file, by their headers (each is read once checked)."""
    path = Path(path)
    if not path.is_file():
        raise SeqbenchError(f"{path}: no such file")
    return open_weights(path)


def write_state(path: Path, arrays: Arrays) -> None:
    """`arrays` as a .pt (torch.save of CPU tensors) or .npz file, written atomically."""
    path = Path(path)
    if path.suffix == NPZ_SUFFIX:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
        return
    if path.suffix not in TORCH_SUFFIXES:
        raise SeqbenchError(f"{path}: the output must end in .pt, .pth or .npz")
    torch = torch_module()
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
    with atomic_path(path) as tmp:
        torch.save(tensors, tmp)


def with_own(model: Any, peer_state: Arrays) -> Arrays:
    """The peer's state plus seqbench's own weights (OWN) that `model` has and the peer lacks."""
    params = params_of(model)
    has_embedding = any(k.endswith("embedding.weight") for k in peer_state)  # an LM's, in the peer's names
    own = {k: np.array(params[k]) for k in OWN if k in params and not (k == "embed.weight" and has_embedding)}
    return {**peer_state, **own}


def convert_in(state: Mapping[str, Any], model: Any, peer_name: str) -> tuple[Arrays, list[str]]:
    """Every weight of `model` from `state`: the peer's blocks, then seqbench's own (OWN) where the
    file has them, each read once its shape is checked. Returns the weights and the OWN names the
    model has and the file lacks."""
    params = peer(peer_name).load(state, model)
    absent = []
    for name in OWN:
        if name not in params:
            continue
        if name not in state:
            absent.append(name)
            continue
        if np.shape(state[name]) != params[name].shape:
            raise ConversionError(
                f"'{name}' has shape {tuple(np.shape(state[name]))}; this model needs "
                f"{params[name].shape} (seqbench's layout: (in, out))"
            )
        params[name] = np.asarray(state[name]).astype(params[name].dtype)
    return params, absent


def check_all_read(state: WeightsFile, model: Any) -> None:
    """Every tensor of the file went into `model`: one that did not is refused, unread."""
    unused = state.unread()
    if unused:
        used = sorted(set(state) - set(unused))
        raise ConversionError(
            f"{state.path} has {len(unused)} tensor(s) this {type(model).__name__} does not use: "
            f"{shown(', '.join(unused), 160)}; it uses {shown(', '.join(used), 200)}"
        )


# ---- a run folder's model, rebuilt from its spec and weights (no data needed) -------------------


def run_model(run_dir: Path, data_dir: Path = Path("data")) -> tuple[Any, Any]:
    """The spec and the NumPy model of a finished run folder, with its trained weights (whichever
    backend trained it; the sizes come from the weights, so the data need not be there)."""
    from seqbench.artifacts.runs import read_status
    from seqbench.models.registry import build_model
    from seqbench.spec import load_spec

    run_dir = Path(run_dir)
    if not (run_dir / "spec.yaml").is_file():
        raise SeqbenchError(f"{run_dir} is not a run folder (it has no spec.yaml)")
    files = [run_dir / name for name in ("model.npz", "model.pt") if (run_dir / name).is_file()]
    if not files:
        raise SeqbenchError(f"{run_dir} has no trained weights (model.npz or model.pt)")
    status = read_status(run_dir)
    if status != "completed":
        raise SeqbenchError(
            f"{run_dir} is {status or 'unfinished (its metrics.json has no status)'}; "
            "`seqbench convert` exports completed runs only"
        )
    spec = load_spec(run_dir / "spec.yaml", [], data_dir)
    weights = read_state(files[0])
    vocab = 256 if spec.task == "lm" else None
    try:
        n_out = vocab or weights["head.bias"].shape[0]
        first = (
            "embed.weight"
            if "embed.weight" in weights
            else next(k for k in weights if k.startswith("layers.0."))
        )
        n_in = vocab or weights[first].shape[0]
        if n_in < 1 or n_out < 1:
            raise ValueError(f"'{shown(first)}' and 'head.bias' give {n_in} inputs and {n_out} outputs")
        model = build_model(spec.model, n_in, n_out, spec.seed, spec.train.dtype, "numpy", vocab)
        check_weights(model.params, weights)
    except (KeyError, StopIteration, ValueError) as exc:
        raise SeqbenchError(f"{files[0]} does not fit the model of {run_dir / 'spec.yaml'}: {exc}") from None
    for name, value in weights.items():
        model.params[name][...] = np.asarray(value)
    return spec, model


def export_run(run_dir: Path, peer_name: str, output: Path, own: bool = True) -> list[str]:
    """Write a run's weights in `peer_name`'s layout (plus seqbench's own, unless `own` is False)
    to `output` (.pt or .npz); returns the names written."""
    target = peer(peer_name)
    spec, model = run_model(run_dir)
    if spec.model.name != target.model:
        raise SeqbenchError(f"{run_dir} is a {spec.model.name} run; {peer_name} holds {target.model} weights")
    state = target.export(model)
    if own:
        state = with_own(model, state)
    write_state(output, state)
    return list(state)


def import_file(
    path: Path, spec: Any, results_dir: Path, data_dir: Path, log: Any = None
) -> tuple[Any, list[str]]:
    """A run folder of `spec`'s model with the weights in file `path` (the peer of the spec's model,
    and seqbench's own where the file has them), scored without training; returns the RunResult and
    the OWN names the file lacked (those keep the seed's initial weights)."""
    from seqbench.run.experiment import RunLog, import_experiment

    log = log or RunLog(None)
    peer_name = peer_for_model(spec.model.name)
    state = read_state(path)
    absent: list[str] = []

    def convert(model: Any) -> Arrays:
        params, missing = convert_in(state, model, peer_name)
        check_all_read(state, model)
        absent.extend(missing)
        if missing:
            log.warn(
                f"{path} has no {', '.join(missing)} (seqbench's own, no peer has them): they keep the "
                f"initial weights of seed {spec.seed}"
            )
        return params

    source = {
        "file": str(path),
        "peer": peer_name,
        "sha256": file_sha256(path),
    }
    return import_experiment(spec, convert, source, results_dir, data_dir, log), absent


def convert_from_flags(
    source: Path,
    to: str | None = None,
    output: Path | None = None,
    blocks_only: bool = False,
    force: bool = False,
    config: Path | None = None,
    overrides: list[str] | None = None,
    name: str | None = None,
    as_json: bool = False,
    quiet: bool = False,
    results_dir: Path = Path("results"),
    data_dir: Path = Path("data"),
) -> Any:
    """`seqbench convert`: export the run folder `source` to peer `to`'s layout in `output` (one line
    on stderr; returns None), or import the weights file `source` into spec `config`'s model as a new
    run folder (returns its RunResult). Options of the other direction are a SeqbenchError."""
    if (to is None) == (config is None):
        raise SeqbenchError(
            "give --to PEER -o FILE (export a run folder) or --config SPEC (import a weights file), not "
            + ("both" if to else "neither")
        )
    from seqbench.artifacts.runs import check_output

    if to is not None:
        if output is None:
            raise SeqbenchError("--to needs --output FILE (.pt, or .npz); e.g. -o weights.pt")
        if overrides or name or as_json:
            raise SeqbenchError(
                "--set, --name and --json are for an import (--config); an export takes --to and -o"
            )
        check_output(output, force, "weights.pt")
        names = export_run(source, to, output, own=not blocks_only)
        print(f"wrote {output} ({len(names)} tensors in {to}'s layout)", file=sys.stderr)
        return None
    if output is not None or blocks_only or force:
        raise SeqbenchError(
            "--output, --blocks-only and --force are for an export (--to); an import writes a run folder"
        )
    from seqbench.run.experiment import RunLog
    from seqbench.spec import load_spec

    spec = load_spec(config, list(overrides or []) + ([f"name={name}"] if name is not None else []), data_dir)
    if spec.seeds is not None and len(spec.seeds) > 1:
        raise SeqbenchError("an import is one run: give the spec one seed (--set seed=0), not seeds")
    result, _ = import_file(source, spec, results_dir, data_dir, RunLog(None if quiet else sys.stderr))
    return result
