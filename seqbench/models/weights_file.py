"""Weights files from anyone, read tensor by tensor: `.npz` (NumPy) and `.pt`/`.pth` (torch.save).

`open_weights(path)` reads what each tensor claims to be, never its data: the name, shape and dtype
in an .npz member's .npy header, or in a torch state dict loaded with `weights_only=True` and
memory-mapped. It returns a `WeightsFile`, a mapping from names to `Stored` tensors; callers compare
`stored.shape` with their model's (`check_weights`) before `np.asarray(stored)` reads one. So a
header that claims 10^11 floats, or a member the model never uses, costs nothing.

A file's claims are never trusted: a tensor must fit in the bytes of the file that hold it; its
dtype must be real numbers (bool, integers, floats; bfloat16 is widened to float32); its values
must be finite (`finite=False` for a checkpoint's optimiser state); and anything else (Python
objects, sparse or meta tensors, keys that are not strings) is refused. Every refusal is one
WeightsFileError line that names the file.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from math import prod
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npy

from seqbench.errors import SeqbenchError, shown

NPZ_SUFFIX = ".npz"
CHUNK = 1 << 20  # bytes read at a time
MAX_RATIO = {zipfile.ZIP_STORED: 1, zipfile.ZIP_DEFLATED: 1032}  # deflate expands 1032x at most
MAX_PICKLE = 16 << 20  # a .pt's data.pkl: names and storage references, ~100 bytes a tensor
HEADERS = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}


class WeightsFileError(SeqbenchError, ValueError):
    """A weights file that is damaged, crafted, or not plain tensors: one line that names it."""


@dataclass(frozen=True, eq=False)
class Stored:
    """One tensor of a weights file, known by its header; `np.asarray(stored)` reads and checks it."""

    path: Path
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    load: Callable[[], np.ndarray]
    reads: set[str]  # the names of its file read so far
    finite: bool = True

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        array = self.load()
        self.reads.add(self.name)
        if self.finite and not np.isfinite(array).all():
            raise WeightsFileError(
                f"{self.path}: weight '{shown(self.name)}' holds NaN or inf values; "
                "seqbench loads finite weights only"
            )
        return array if dtype is None else array.astype(dtype)


@dataclass(frozen=True)
class WeightsFile(Mapping[str, Stored]):
    """A weights file's tensors by name, none read yet; `unread()` names those never read."""

    path: Path
    tensors: dict[str, Stored]
    reads: set[str]  # shared with its tensors

    def __getitem__(self, name: str) -> Stored:
        return self.tensors[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def unread(self) -> list[str]:
        return sorted(set(self.tensors) - self.reads)

    def arrays(self) -> dict[str, np.ndarray]:
        """Every tensor, read (for a file whose names and shapes were checked, or a bounded one)."""
        return {name: np.asarray(stored) for name, stored in self.items()}


def check_weights(expected: Mapping[str, Any], given: Mapping[str, Any]) -> None:
    """`given` has exactly the names and shapes of `expected` (arrays, tensors or `Stored`s, by name),
    or a ValueError says which differs."""
    missing = sorted(set(expected) - set(given))
    extra = sorted(set(given) - set(expected))
    if missing or extra:
        raise ValueError(
            f"weights differ from the model: missing {missing or 'none'}, unexpected {extra or 'none'}"
        )
    for name, value in expected.items():
        has, needs = tuple(given[name].shape), tuple(value.shape)
        if has != needs:
            raise ValueError(f"weight '{name}' has shape {has}, the model needs {needs}")


def open_weights(path: str | Path, finite: bool = True, data: bytes | None = None) -> WeightsFile:
    """The tensors of the .npz or .pt/.pth file `path` (or of the .npz bytes `data`), by their headers.

    A file that cannot be opened is the OSError of `open`; anything else wrong is a WeightsFileError.
    """
    path = Path(path)
    if data is None and path.exists() and not path.is_file():
        raise WeightsFileError(f"{path} is not a regular file")
    reads: set[str] = set()
    if data is not None or path.suffix == NPZ_SUFFIX:
        size = len(data) if data is not None else path.stat().st_size
        source = io.BytesIO(data) if data is not None else path
        tensors = _npz_tensors(path, lambda: zipfile.ZipFile(source), size, reads, finite)
    else:
        tensors = _torch_tensors(path, reads, finite)
    return WeightsFile(path, tensors, reads)


def bad_dtype(path: Path, name: str, dtype: object) -> WeightsFileError:
    return WeightsFileError(
        f"{path}: '{shown(name)}' holds {dtype} values, not real numbers; "
        "seqbench reads bool, integer and float tensors"
    )


# ---- .npz: a zip of .npy members, each header read and checked before its data ---------------------

Header = tuple[tuple[int, ...], bool, np.dtype]  # shape, fortran order, dtype


def _npz_tensors(
    path: Path, open_zip: Callable[[], zipfile.ZipFile], size: int, reads: set[str], finite: bool
) -> dict[str, Stored]:
    """Every member's header, checked; `size`: the bytes the file really has."""
    tensors = {}
    with _npz_errors(path), open_zip() as archive:
        for info in archive.infolist():
            name, header = _member_header(path, archive, info, size)
            load = _member_loader(path, open_zip, info, header)
            tensors[name] = Stored(path, name, header[0], header[2], load, reads, finite)
    return tensors


@contextlib.contextmanager
def _npz_errors(path: Path) -> Iterator[None]:
    """A damaged or crafted .npz is one line: `PATH is not a readable .npz file (why)`."""
    try:
        yield
    except WeightsFileError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, KeyError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsFileError(f"{path} is not a readable .npz file ({shown(reason, 160)})") from None


def _member_header(
    path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, size: int
) -> tuple[str, Header]:
    """A member's name (less .npy) and its .npy header: real numbers, and no more bytes than hold it."""
    if not info.filename.endswith(".npy"):
        raise ValueError(f"member '{info.filename}' is not an .npy array")
    if info.compress_type not in MAX_RATIO:
        raise ValueError(f"member '{info.filename}' uses zip compression {info.compress_type}")
    name = info.filename.removesuffix(".npy")
    with archive.open(info) as stream:
        header = _npy_header(stream)
    shape, _, dtype = header
    if dtype.kind not in "biuf" or dtype.fields is not None:
        raise bad_dtype(path, name, dtype)
    nbytes = prod(shape) * dtype.itemsize
    held = min(info.compress_size, size)
    if nbytes > MAX_RATIO[info.compress_type] * held:
        raise WeightsFileError(
            f"{path}: '{shown(name)}' claims shape {shape} of {dtype} ({nbytes} bytes), more than the "
            f"{held} bytes that hold it could; a damaged or crafted file"
        )
    return name, header


def _npy_header(stream: Any) -> Header:
    """The shape, fortran order and dtype of an .npy stream, read up to its data."""
    version = npy.read_magic(stream)
    if version not in HEADERS:
        raise ValueError(f".npy format {version[0]}.{version[1]}, not 1.0 or 2.0")
    shape, fortran, dtype = HEADERS[version](stream)
    if any(n < 0 for n in shape):
        raise ValueError(f"negative shape {shape}")
    return tuple(shape), bool(fortran), dtype


def _member_loader(
    path: Path, open_zip: Callable[[], zipfile.ZipFile], info: zipfile.ZipInfo, header: Header
) -> Callable[[], np.ndarray]:
    """A function that reads the member's array, once its header is still the one checked."""

    def load() -> np.ndarray:
        shape, fortran, dtype = header
        with _npz_errors(path), open_zip() as archive, archive.open(info) as stream:
            if _npy_header(stream) != header:
                raise ValueError(f"'{info.filename}' changed while it was read")
            flat = np.empty(prod(shape), dtype=dtype)
            _read_into(stream, flat.view(np.uint8))
        return flat.reshape(shape, order="F" if fortran else "C")

    return load


def _read_into(stream: Any, buffer: np.ndarray) -> None:
    """Fill `buffer` (bytes) from `stream`, a chunk at a time; a short stream is an EOFError."""
    done = 0
    while done < len(buffer):
        got = stream.readinto(buffer[done : done + CHUNK])
        if not got:
            raise EOFError(f"the data ends after {done} of {len(buffer)} bytes")
        done += got


# ---- .pt / .pth: torch.load(weights_only=True, mmap=True), then each tensor checked ----------------

TORCH_DTYPES = {  # torch's name -> the NumPy dtype it reads as (bfloat16, NumPy has none: widened)
    **{name: np.dtype(name) for name in ("bool", "uint8", "int8", "int16", "int32", "int64")},
    **{name: np.dtype(name) for name in ("float16", "float32", "float64")},
    "bfloat16": np.dtype(np.float32),
}


def _torch_tensors(path: Path, reads: set[str], finite: bool) -> dict[str, Stored]:
    torch = torch_module()
    state = _torch_load(torch, path)
    if not isinstance(state, dict):
        raise WeightsFileError(f"{path} holds a {type(state).__name__}, not a dictionary of named tensors")
    tensors = {}
    for key, value in state.items():
        if not isinstance(key, str):
            raise WeightsFileError(f"{path}: its key {shown(repr(key))} is not a name (a string)")
        if not isinstance(value, torch.Tensor):
            raise WeightsFileError(
                f"{path}: '{shown(key)}' is a {type(value).__name__}, not a tensor "
                "(save model.state_dict(), not a checkpoint that wraps it)"
            )
        dtype = _tensor_dtype(torch, path, key, value)
        load = _tensor_loader(torch, value, dtype)
        tensors[key] = Stored(path, key, tuple(value.shape), dtype, load, reads, finite)
    return tensors


def torch_module() -> Any:
    """torch, or a SeqbenchError that says how to install it."""
    from seqbench.models.registry import TORCH_HINT, torch_installed

    if not torch_installed():
        raise SeqbenchError(f"reading or writing a .pt file needs PyTorch: {TORCH_HINT}; or use a .npz file")
    import torch

    return torch


def _torch_load(torch: Any, path: Path) -> Any:
    """torch.load of a zip file (torch.save's format since PyTorch 1.6): weights only, memory-mapped."""
    _check_torch_zip(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc.__context__ or exc)  # torch's own message advises weights_only=False
        if "GLOBAL" in reason or "allowlist" in reason:
            raise WeightsFileError(
                f"{path} is not a plain weights file (it holds Python objects); seqbench loads weights only"
            ) from None
        raise _not_weights(path, reason) from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        raise _not_weights(path, str(exc)) from None


def _check_torch_zip(path: Path) -> None:
    """A zip archive (torch.save's format since PyTorch 1.6) whose pickle is of a state dict's size."""
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [info for info in archive.infolist() if info.filename.endswith("data.pkl")]
    except zipfile.BadZipFile:
        raise _not_weights(
            path, "not a zip archive (torch.save's format since PyTorch 1.6: re-save an older file)"
        ) from None
    except (ValueError, NotImplementedError) as exc:  # e.g. a member name that is not UTF-8
        raise _not_weights(path, f"a damaged zip archive ({exc})") from None
    big = next((info for info in pickles if info.file_size > MAX_PICKLE), None)
    if big is not None:
        raise WeightsFileError(
            f"{path}: its {shown(big.filename)} is {big.file_size} bytes, far more than a state dict's "
            "names need; a damaged or crafted file"
        )


def _not_weights(path: Path, reason: str) -> WeightsFileError:
    reason = reason.strip().splitlines()[0] if reason.strip() else "unreadable"
    return WeightsFileError(
        f"{path} is not a weights file (not a state dict of tensors saved by torch.save, nor an .npz): "
        f"{shown(reason, 160)}"
    )


def _tensor_dtype(torch: Any, path: Path, name: str, tensor: Any) -> np.dtype:
    """The NumPy dtype `tensor` reads as; a sparse, meta or non-real tensor, or one that claims more
    values than its storage holds (an expanded view), is refused."""
    where = f"{path}: '{shown(name)}'"
    if tensor.layout != torch.strided:
        raise WeightsFileError(f"{where} is a {tensor.layout} tensor; seqbench reads dense tensors only")
    if tensor.device.type == "meta":
        raise WeightsFileError(f"{where} is a meta tensor (a shape without values); save the weights")
    dtype = TORCH_DTYPES.get(str(tensor.dtype).removeprefix("torch."))
    if dtype is None or tensor.is_quantized:
        raise bad_dtype(path, name, str(tensor.dtype).removeprefix("torch."))
    if tensor.numel() * tensor.element_size() > tensor.untyped_storage().nbytes():
        raise WeightsFileError(
            f"{where} claims shape {tuple(tensor.shape)}, more values than the file holds for it; "
            "a damaged or crafted file"
        )
    return dtype


def _tensor_loader(torch: Any, tensor: Any, dtype: np.dtype) -> Callable[[], np.ndarray]:
    """A function that copies the (memory-mapped) tensor into a NumPy array of `dtype`."""

    def load() -> np.ndarray:
        return np.array(tensor.detach().to(getattr(torch, dtype.name)).numpy())

    return load
