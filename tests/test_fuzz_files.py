"""Hostile files through the commands that read them: run folders, weights and CSVs, hundreds of cases.

Three tiny runs are trained once (a NumPy Mamba forecast, a Torch minGRU forecast when torch is
installed, a NumPy minGRU language model). Each case copies one run folder (or an exported
weights file, or a reference file, or the data CSV) into its own folder, spoils ONE file with a
seeded mutation (bytes, JSON, YAML, .npz, .pt or CSV aware; or the file swapped for a FIFO, a
symlink, a folder, a 3 GiB sparse file) and runs one command on it, in process, as a user would:
predict, sample, report, convert (both ways), compare, reference, the regression gate.

Whatever the input, the command ends with exit 0, 1 or 2 (never 130, never a traceback; exit 2
says one `error:` line), within CASE_SECONDS (a hang fails), and every file outside the case's
`-o` target (and an import's new run folder) is exactly as it was: bytes, size, mtime.

Each case's generator is seeded by its number: `pytest tests/test_fuzz_files.py -k "case[17]"`
replays case 17, and every assertion message starts with what the case did.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import signal
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from cli_helpers import invoke, make_text, no_pictures
from typer.testing import CliRunner

from seqbench.cli import app

CASES = int(os.environ.get("SEQBENCH_FUZZ_CASES", "300"))
SEED = os.environ.get("SEQBENCH_FUZZ_SEED", "24")  # issue 24; set another to draw other cases
CASE_SECONDS = 20  # a case that runs longer is a hang
SPARSE = 3 * 2**30  # a 3 GiB file that costs no disk
SMALL = 1 << 20  # a file up to this size is compared byte for byte; a larger one by size and mtime
runner = CliRunner()


# ---- the runs, trained once -------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """{"root": folder, "fm": run, "ft": run or None, "lm": run, "w.npz": file, "w.pt": file or None,
    "ref.json": file, "f.yaml"/"t.yaml": import specs, "p.csv": data, "outside": a file no case may
    change}; the runs' folders are never spoiled, only copies of them."""
    patch = pytest.MonkeyPatch()
    no_pictures(patch)  # the pictures are not what is fuzzed here
    root = tmp_path_factory.mktemp("fuzz_files")
    rng = np.random.default_rng(0)
    n = 200
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    dates = np.datetime_as_string(np.busday_offset("2015-01-01", np.arange(n), roll="forward"))
    lines = ["Date,Close,Open"] + [f"{d},{c:.4f},{c * 1.001:.4f}" for d, c in zip(dates, close, strict=True)]
    (root / "p.csv").write_text("\n".join(lines) + "\n")
    (root / "plays.txt").write_bytes(make_text(6000))
    data = f"{{source: csv, path: {root / 'p.csv'}, target: Close, seq_len: 8"
    specs = {
        "f.yaml": f"name: fm\ndataset: {data}, features: [Close, Open]}}\n"
        "model: {name: mamba, hidden_size: 4, mamba: {state_size: 2, expand: 1, conv_kernel: 2}}\n",
        "t.yaml": f"name: ft\ndataset: {data}}}\n"
        "model: {name: mingru, hidden_size: 4, backend: torch, mingru: {variant: log_space}}\n",
        "lm.yaml": f"name: lm\ntask: lm\ndataset: {{source: text, path: {root / 'plays.txt'}, seq_len: 16}}\n"
        "model: {name: mingru, hidden_size: 8}\ntrain: {epochs: 1, batches_per_epoch: 3, batch_size: 8}\n",
    }
    for name, text in specs.items():
        (root / name).write_text(text + ("train: {epochs: 1, batch_size: 64}\n" if name != "lm.yaml" else ""))
    has_torch = _has_torch()
    world: dict[str, Any] = {"root": root, "ft": None, "w.pt": None}
    for key, spec in (("fm", "f.yaml"), ("ft", "t.yaml"), ("lm", "lm.yaml")):
        if key == "ft" and not has_torch:
            continue
        result = invoke("train", "-q", "-c", root / spec, "--results", root / "results")
        assert result.exit_code == 0, result.output
        (world[key],) = (root / "results" / key).iterdir()
    for key, run, peer in (("w.npz", "fm", "mambapy"), ("w.pt", "ft", "mingru_pytorch")):
        if world[run] is not None:
            result = invoke("convert", world[run], "--to", peer, "-o", root / key)
            assert result.exit_code == 0, result.output
            world[key] = root / key
    result = invoke("reference", world["fm"], "-o", root / "ref.json")
    assert result.exit_code == 0, result.output
    for key in ("ref.json", "f.yaml", "t.yaml", "p.csv"):
        world[key] = root / key
    (root / "outside").mkdir()
    world["outside"] = root / "outside" / "secret.txt"
    world["outside"].write_text("a file outside the case's folder: no command may change it\n")
    world["before"] = snapshot(root)
    yield world
    patch.undo()


def _has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


# ---- what a folder holds, to tell what a command changed --------------------------------------


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every path under `folder`, not following links: its kind, size, mtime, and its bytes (a
    regular file up to SMALL) or its link target."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                out[str(path)] = ("link", os.readlink(path))
            elif stat.S_ISREG(info.st_mode):
                content = path.read_bytes() if info.st_size <= SMALL else None
                out[str(path)] = ("file", info.st_size, info.st_mtime_ns, content)
            elif stat.S_ISDIR(info.st_mode):
                out[str(path)] = ("dir",)
            else:
                out[str(path)] = ("other", stat.S_IFMT(info.st_mode), info.st_mtime_ns)
    return out


def changes(before: dict[str, tuple], after: dict[str, tuple], allowed: list[Path]) -> list[str]:
    """The paths created, removed or changed, but for those at or under an `allowed` path."""

    def free(path: str) -> bool:
        return any(path == str(a) or path.startswith(f"{a}{os.sep}") for a in allowed)

    out = [f"removed {p}" for p in before.keys() - after.keys() if not free(p)]
    out += [f"created {p}" for p in after.keys() - before.keys() if not free(p)]
    out += [f"changed {p}" for p in before.keys() & after.keys() if before[p] != after[p] and not free(p)]
    return sorted(out)


# ---- mutations: each spoils one file and says how ---------------------------------------------


def random_bytes(rng: random.Random, n: int) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(n))


def mutate_bytes(rng: random.Random, path: Path, world: dict[str, Any]) -> str:
    """A mutation of any file: its bytes, or the file swapped for something else."""
    data = path.read_bytes()
    kind = rng.choice(
        ["truncate", "flip", "overwrite", "empty", "random", "other", "sparse", "fifo", "link", "dangling",
         "dir", "missing"]
    )  # fmt: skip
    if kind == "truncate":
        at = rng.randrange(len(data) + 1)
        path.write_bytes(data[:at])
        return f"truncated at {at} of {len(data)} bytes"
    if kind == "flip" and data:
        spots = sorted(rng.randrange(len(data)) for _ in range(rng.randint(1, 8)))
        spoiled = bytearray(data)
        for at in spots:
            spoiled[at] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(spoiled))
        return f"bits flipped at {spots}"
    if kind == "overwrite" and data:
        at, n = rng.randrange(len(data)), rng.randint(1, 64)
        path.write_bytes(data[:at] + random_bytes(rng, n) + data[at + n :])
        return f"{n} random bytes written at {at}"
    if kind == "random":
        n = rng.choice([1, 7, 100, 4096])
        path.write_bytes(random_bytes(rng, n))
        return f"replaced with {n} random bytes"
    if kind == "other":
        donors = [p for p in world["root"].rglob("*") if p.is_file() and p.name != path.name]
        donor = rng.choice(sorted(donors))
        shutil.copyfile(donor, path)
        return f"replaced with {donor.relative_to(world['root'])}"
    if kind == "sparse":
        with open(path, "ab") as f:
            f.truncate(SPARSE)
        return "grown to a sparse 3 GiB"
    if kind in ("fifo", "link", "dangling", "dir", "missing"):
        path.unlink()
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "link":
            path.symlink_to(world["outside"])
        elif kind == "dangling":
            path.symlink_to(path.parent / "nowhere")
        elif kind == "dir":
            path.mkdir()
            (path / "inside").write_text("x")
        return {"fifo": "a FIFO", "link": "a symlink to a file outside", "dangling": "a dangling symlink",
                "dir": "a folder", "missing": "deleted"}[kind]  # fmt: skip
    path.write_bytes(b"")
    return "emptied"


DEEP = "__deep__"  # a value written as 5000 nested lists, after the dump


def odd_value(rng: random.Random) -> tuple[Any, str]:
    value = rng.choice(
        [None, "x", "", [1, "a"], {"k": 1}, math.nan, math.inf, 1e308, -1, 0, 10**400, True, DEEP,
         "../../etc/passwd", "\x00", "é" * 3]
    )  # fmt: skip
    return value, "5000 nested lists" if value == DEEP else repr(value)[:40]


def key_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside nested dicts and lists."""
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            out += key_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value[:3]):
            out += key_paths(item, (*prefix, i))
    return out


def mutate_tree(rng: random.Random, tree: Any) -> tuple[Any, str]:
    """Delete a key, or set it (or the whole document) to an odd value."""
    paths = key_paths(tree)
    if not paths or rng.random() < 0.05:
        value, said = odd_value(rng)
        return value, f"the document replaced by {said}"
    where = rng.choice(paths)
    parent = tree
    for step in where[:-1]:
        parent = parent[step]
    if rng.random() < 0.3:
        del parent[where[-1]]
        return tree, f"{'.'.join(map(str, where))} deleted"
    value, said = odd_value(rng)
    parent[where[-1]] = value
    return tree, f"{'.'.join(map(str, where))} = {said}"


def deep_text() -> str:
    return "[" * 5000 + "]" * 5000


def mutate_json(rng: random.Random, path: Path) -> str:
    tree, said = mutate_tree(rng, json.loads(path.read_text()))
    text = json.dumps(tree, indent=1).replace(json.dumps(DEEP), deep_text())
    path.write_text(text)
    return f"json: {said}"


def mutate_yaml(rng: random.Random, path: Path) -> str:
    tree, said = mutate_tree(rng, yaml.safe_load(path.read_text()))
    text = yaml.safe_dump(tree, allow_unicode=True, width=10**6).replace(DEEP, deep_text())
    path.write_text(text)
    return f"yaml: {said}"


def mutate_arrays(rng: random.Random, arrays: dict[str, Any], torch_mode: bool) -> str:
    """A member removed, renamed, reshaped, retyped, NaN-filled, huge; or an extra member."""
    name = rng.choice(sorted(arrays))
    value = np.array(arrays[name])
    kind = rng.choice(["remove", "rename", "reshape", "dtype", "nan", "huge", "extra", "scalar", "empty"])
    if kind == "remove":
        del arrays[name]
    elif kind == "rename":
        arrays[rng.choice(["x", name + ".1", "", "layers.9." + name, "../" + name])] = arrays.pop(name)
    elif kind == "reshape":
        shape = rng.choice([(value.size,), (1, value.size), (value.size + 1,), (2, 2, 2), ()])
        arrays[name] = np.resize(value, shape)
    elif kind == "dtype":
        dtypes = ["complex64", "float16", "int64", "bool", "uint8"] + (
            [] if torch_mode else ["str", "object"]
        )
        dtype = rng.choice(dtypes)
        arrays[name] = value.astype(str) if dtype == "str" else value.astype(dtype)
        kind = f"dtype {dtype}"
    elif kind == "nan":
        arrays[name] = np.full_like(value, rng.choice([np.nan, np.inf, -np.inf]))
    elif kind == "huge":
        arrays[name] = np.full_like(value, rng.choice([1e308, 3e38, -1e30, 1e-320]))
    elif kind == "extra":
        arrays[rng.choice(["extra", "head.weight2", "optimizer"])] = np.zeros(rng.choice([0, 3, 1000]))
    elif kind == "scalar":
        arrays[name] = np.float64(1.5)
    else:
        arrays[name] = np.zeros((0, *value.shape[1:]), value.dtype)
    return f"{kind} on '{name}'"


def mutate_npz(rng: random.Random, path: Path) -> str:
    with np.load(path) as stored:
        arrays = {name: stored[name] for name in stored.files}
    said = mutate_arrays(rng, arrays, torch_mode=False)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return f"npz: {said}"


def mutate_pt(rng: random.Random, path: Path) -> str:
    import torch

    state = torch.load(path, weights_only=True)
    roll = rng.random()
    if roll < 0.25:  # what a state dict may hold that is not a plain tensor
        name = rng.choice(sorted(state))
        kind = rng.choice(["bf16", "sparse", "meta", "tuple key", "string", "list", "nested", "int"])
        tensor = state[name]
        if kind == "bf16":
            state[name] = tensor.to(torch.bfloat16)
        elif kind == "sparse":
            state[name] = tensor.to_sparse()
        elif kind == "meta":
            state[name] = torch.empty(tensor.shape, device="meta")
        elif kind == "tuple key":
            state[(name, 0)] = state.pop(name)
        elif kind == "string":
            state[name] = "weights"
        elif kind == "list":
            state[name] = [tensor, tensor]
        elif kind == "nested":
            state[name] = {"w": tensor}
        else:
            state[name] = 3
        said = f"{kind} at '{name}'"
    else:
        arrays = {name: t.numpy() for name, t in state.items()}
        said = mutate_arrays(rng, arrays, torch_mode=True)
        state = {name: torch.from_numpy(np.ascontiguousarray(a)) for name, a in arrays.items()}
    torch.save(state, path)
    return f"pt: {said}"


def mutate_csv(rng: random.Random, path: Path) -> str:
    """A CSV's text edited: a row dropped or doubled, a cell or header spoiled, rows shuffled."""
    lines = path.read_text().splitlines()
    kind = rng.choice(["cell", "header", "drop rows", "double", "shuffle", "sep", "column", "header only"])
    head, rows = lines[0], lines[1:]
    if kind == "cell" and rows:
        i = rng.randrange(len(rows))
        cells = rows[i].split(",")
        j = rng.randrange(len(cells))
        cells[j] = rng.choice(["", "nan", "inf", "-1e309", "x", '"', "2021-02-29", "1e308", "\x00", "é"])
        rows[i] = ",".join(cells)
        kind = f"cell {i},{j} = {cells[j]!r}"
    elif kind == "header":
        names = head.split(",")
        j = rng.randrange(len(names))
        names[j] = rng.choice(["", "Date", "x", names[(j + 1) % len(names)], '"a,b"'])
        head = ",".join(names)
        kind = f"header {head!r}"
    elif kind == "drop rows" and rows:
        at, n = rng.randrange(len(rows)), rng.choice([1, 10, 1000])
        del rows[at : at + n]
        kind = f"rows {at}..{at + n} dropped"
    elif kind == "double" and rows:
        at = rng.randrange(len(rows))
        rows.insert(at, rows[at])
        kind = f"row {at} doubled"
    elif kind == "shuffle":
        rng.shuffle(rows)
    elif kind == "sep":
        head, rows = head.replace(",", ";"), [row.replace(",", ";") for row in rows]
    elif kind == "column":
        head, rows = head + ",Extra", [row + f",{i}" for i, row in enumerate(rows)]
    else:
        rows = []
    path.write_text("\n".join([head, *rows]) + "\n")
    return f"csv: {kind}"


def spoil(rng: random.Random, path: Path, world: dict[str, Any]) -> str:
    """One seeded mutation of `path`, aware of its format half of the time."""
    aware = {
        ".json": mutate_json,
        ".yaml": mutate_yaml,
        ".npz": mutate_npz,
        ".pt": mutate_pt,
        ".csv": mutate_csv,
    }.get(path.suffix)
    if aware is not None and rng.random() < 0.6:
        return f"{path.name}: {aware(rng, path)}"
    return f"{path.name}: {mutate_bytes(rng, path, world)}"


# ---- cases ------------------------------------------------------------------------------------


@dataclass
class Case:
    args: list[Any]
    said: str
    allowed: list[Path] = field(default_factory=list)  # the -o target and an import's run folders

    def __post_init__(self) -> None:
        self.args = [str(arg) for arg in self.args]


def copy_run(run: Path, case: Path) -> Path:
    target = case / "results" / run.parent.name / run.name
    shutil.copytree(run, target)
    return target


def make_case(n: int, case: Path, world: dict[str, Any]) -> Case:
    """Case `n`: one spoiled file and one command, drawn from random.Random(SEED, n)."""
    rng = random.Random(f"{SEED}-{n}")
    runs = [key for key in ("fm", "ft", "lm") if world[key] is not None]
    what = rng.choices(["run", "weights", "reference", "data"], weights=[70, 12, 9, 9])[0]
    out = case / "out"
    if what == "weights":
        key = rng.choice([k for k in ("w.npz", "w.pt") if world[k] is not None])
        source = case / key
        shutil.copyfile(world[key], source)
        said = spoil(rng, source, world)
        spec = world["f.yaml" if key == "w.npz" else "t.yaml"]
        imported = case / "imported"
        return Case(["convert", source, "--config", spec, "--results", imported, "-q"], said, [imported])
    if what == "reference":
        run = copy_run(world["fm"], case)
        reference = case / "ref.json"
        shutil.copyfile(world["ref.json"], reference)
        said = spoil(rng, reference, world)
        return Case(["compare", run, "--against", reference, "--fail-if-worse", "5%"], said)
    if what == "data":
        run = copy_run(world[rng.choice([k for k in ("fm", "ft") if world[k] is not None])], case)
        data = case / "data.csv"
        shutil.copyfile(world["p.csv"], data)
        said = spoil(rng, data, world)
        return Case(["predict", run, "--data", data], said)
    key = rng.choice(runs)
    run = copy_run(world[key], case)
    files = sorted(p for p in run.iterdir() if p.is_file())
    said = f"{key} run, {spoil(rng, rng.choice(files), world)}"
    commands: list[tuple[list[Any], list[Path]]] = [
        (["report", run, "-o", out / "r.html"], [out]),
        (["compare", run], []),
        (["reference", run, "-o", out / "ref.json"], [out]),
        (["compare", run, "--against", world["ref.json"], "--fail-if-worse", "5%"], []),
    ]
    if key == "lm":
        commands += [(["sample", run, "--length", "20"], [])] * 4
    else:
        commands += [(["predict", run], []), (["predict", run, "-o", out / "f.csv"], [out])] * 2
        peer, suffix = ("mambapy", rng.choice([".pt", ".npz"])) if key == "fm" else ("mingru_pytorch", ".pt")
        if suffix == ".pt" and not _has_torch():
            suffix = ".npz"
        commands += [(["convert", run, "--to", peer, "-o", out / f"w{suffix}"], [out])] * 2
    args, allowed = rng.choice(commands)
    return Case(args, said, allowed)


class Hang(Exception):
    pass


def _hang(signum: int, frame: Any) -> None:
    raise Hang(f"no answer within {CASE_SECONDS} s")


@pytest.mark.parametrize("n", range(CASES), ids=lambda n: f"case{n}")
def test_spoiled_files_never_crash_hang_or_clobber(world, n, tmp_path, monkeypatch):
    case_dir = tmp_path / "case"
    case_dir.mkdir()
    (case_dir / "out").mkdir()
    monkeypatch.chdir(case_dir)
    no_pictures(monkeypatch)
    case = make_case(n, case_dir, world)
    shown = f"case {n}: {case.said}; seqbench {' '.join(case.args)}"
    before = snapshot(case_dir)
    previous = signal.signal(signal.SIGALRM, _hang)
    signal.alarm(CASE_SECONDS)
    try:
        result = runner.invoke(app, case.args)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    output = result.output
    print(f"{shown}\nexit {result.exit_code}\n{output}")  # shown with -s, or when the case fails
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{shown}\nraised {type(result.exception).__name__}: {result.exception}") from (
            result.exception
        )
    assert result.exit_code in (0, 1, 2), f"{shown}\nexit {result.exit_code}\n{output}"
    assert "Traceback" not in output, f"{shown}\n{output}"
    if result.exit_code == 2:
        said = [line for line in result.stderr.splitlines() if not line.startswith(("warning: ", "note: "))]
        assert len(said) == 1 and said[0].startswith("error: "), f"{shown}\n{result.stderr}"
    changed = changes(before, snapshot(case_dir), case.allowed)
    assert not changed, f"{shown}\n{changed}\n{output}"
    assert snapshot(world["root"]) == world["before"], f"{shown}: a file of the trained runs changed"
