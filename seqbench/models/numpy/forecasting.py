"""What a forecast model may add around its backbone, shared by every NumPy model (all optional):

- segments (SegRNN, Lin et al. 2023, arXiv 2308.11200): a window of L rows is read as N = L / S
  steps of S rows each, x (B, L, F) -> (B, N, S F), so a step sees the rows up to its segment's end;
- parallel decoding per output segment (SegRNN's PMF): the backbone runs once more per output
  segment m = 1..M from the state after the window, its input a learned position p_m, and the
  head maps each of those M states to that segment's values;
- a linear skip path (RLinear, Li et al. 2023, arXiv 2305.10721): y += flatten(x) W_skip + b_skip;
- dropout on what the head reads (Srivastava et al. 2014), in training only;
- a gate initialisation with long memory: chrono initialisation (Tallec & Ollivier 2018, arXiv
  1804.11188), each unit's retention gate biased so its time scale is log-uniform in [1, T], T the
  steps the model reads (minGRU's b_z, GRU's update gate, Mamba's step size delta).

`ForecastOptions` holds the settings; the functions are the forward and backward of each part.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

DECODERS = ("last", "segments")  # the head on the last state | one decoder step per output segment
GATE_INITS = ("default", "chrono")  # each model's own initialisation | chrono (long memory)


@dataclass(frozen=True)
class ForecastOptions:
    """A forecast model's input and head settings (spec keys `model.segment`, `model.decoder`,
    `model.linear_skip`, `model.dropout`); `seq_len` and `horizon` are the windows' sizes."""

    segment: int = 1  # S, rows per step
    decoder: str = "last"
    linear_skip: bool = False
    dropout: float = 0.0
    gate_init: str = "default"
    seq_len: int | None = None  # L (needed by the skip path)
    horizon: int | None = None  # H (needed by the segment decoder)

    def __post_init__(self) -> None:
        if self.segment < 1:
            raise ValueError(f"segment must be >= 1, got {self.segment}")
        if self.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, not {self.decoder!r}")
        if self.gate_init not in GATE_INITS:
            raise ValueError(f"gate_init must be one of {GATE_INITS}, not {self.gate_init!r}")
        if self.gate_init == "chrono" and self.seq_len is None:
            raise ValueError("gate_init chrono needs seq_len")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.seq_len is not None and self.seq_len % self.segment:
            raise ValueError(f"segment {self.segment} does not divide seq_len {self.seq_len}")
        if self.linear_skip and self.seq_len is None:
            raise ValueError("linear_skip needs seq_len")
        if self.decoder == "segments" and (self.horizon is None or self.horizon % self.segment):
            raise ValueError(f"decoder segments needs a horizon that segment {self.segment} divides")

    @property
    def out_segments(self) -> int:
        """M, the decoder's steps: horizon / segment (1 for the head on the last state)."""
        return self.horizon // self.segment if self.decoder == "segments" else 1

    @property
    def steps(self) -> int:
        """The steps the model reads per window: seq_len / segment."""
        return self.seq_len // self.segment


def to_segments(x: np.ndarray, segment: int) -> np.ndarray:
    """x (B, L, F) -> (B, L / S, S F): step j holds rows j S .. (j + 1) S - 1, row-major."""
    B, L, F = x.shape
    if L % segment:
        raise ValueError(f"a window of {L} rows cannot be read in segments of {segment}")
    return x.reshape(B, L // segment, segment * F)


def decoder_inputs(u: np.ndarray, position: np.ndarray) -> np.ndarray:
    """u (B, N, A) and the positions p (M, A) -> (B M, N + 1, A): row b M + m is window b, then p_m.

    Running the backbone over it gives, at its last step, the state after the window updated once
    with input p_m: segment m's decoder state, for all m in parallel."""
    B, M = len(u), len(position)
    window = np.repeat(u, M, axis=0)  # (B M, N, A)
    return np.concatenate([window, np.tile(position, (B, 1))[:, None]], axis=1)  # (B M, N + 1, A)


def decoder_inputs_backward(du: np.ndarray, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """dL/d(decoder_inputs) (B M, N + 1, A) -> dL/du (B, N, A), dL/dp (M, A)."""
    BM, N1, A = du.shape
    M = BM // batch
    d_window = du[:, :-1].reshape(batch, M, N1 - 1, A).sum(axis=1)  # (B, N, A)
    d_position = du[:, -1].reshape(batch, M, A).sum(axis=0)  # (M, A)
    return d_window, d_position


def skip_prefixes(x: np.ndarray, W: np.ndarray, b: np.ndarray, segment: int) -> np.ndarray:
    """The skip path of each prefix of the window, (B, N, O): step j reads rows up to (j + 1) S - 1
    (later rows count as 0), so step N - 1's is the skip path itself. For the causality audit."""
    _, L, F = x.shape
    per_row = np.einsum("blf,lfo->blo", x, W.reshape(L, F, -1))  # (B, L, O)
    return np.cumsum(per_row, axis=1)[:, segment - 1 :: segment] + b  # (B, N, O)


def chrono_time_scales(rng: np.random.Generator, size: int, steps: int) -> np.ndarray:
    """Chrono initialisation's time scales: u ~ U(1, T - 1) per unit (T = max(steps, 2)); a gate with
    bias log(u) keeps a fraction u / (1 + u) of its state per step, a memory of about u steps."""
    T = max(steps, 2)
    return rng.uniform(1.0, max(T - 1.0, 1.0), size=size)


def dropout_mask(shape: tuple[int, ...], rate: float, rng: np.random.Generator, dtype: Any) -> np.ndarray:
    """Inverted dropout: 0 with probability `rate`, else 1 / (1 - rate), so the mean is unchanged."""
    return ((rng.random(shape) >= rate) / (1.0 - rate)).astype(dtype)
