"""The baselines a byte-level language model stands next to, on the same held-out bytes.

Every baseline scores each held-out byte exactly once, in nats per byte and bits per byte
(bits = nats / ln 2):

- unigram: add-one (Laplace) smoothed frequencies of the 256 byte values, fit on train;
- ngram: an interpolated modified Kneser-Ney byte n-gram model (Chen & Goodman 1998, "An
  empirical study of smoothing techniques for language modeling", section 3; one discount
  D1, D2, D3+ per level, estimated from that level's count-of-counts), interpolated down to
  the add-one unigram; its order is the best on val among 1..max_order (default 8: all eight
  orders on 1 MB of text take about a second);
- zlib / lzma: the size of the held-out bytes compressed alone (zlib level 9, lzma preset
  9 | PRESET_EXTREME), as bits per held-out byte.

Memory does not grow with the text: the n-gram counts the last `NGRAM_FIT_BYTES` (2 MiB) of
train and picks its order on the first `NGRAM_ORDER_BYTES` (1 MiB) of val (a text of random
bytes needs about 400 bytes of counts per byte counted; metrics.json records both sizes as
`fit_bytes` and `order_bytes`); every baseline then scores all of the held-out bytes, and the
unigram counts all of train, a chunk of `CHUNK` bytes at a time (a compressor is fed the same
chunks and gives the same size as on the whole part at once).

The n-gram model of order n interpolates levels m = n-1, n-2, ..., 0: for a context h of m
bytes, its shortening h' (the oldest byte dropped) and the next byte w, as in Chen & Goodman's
equation (17),

    P_m(w | h) = max(c(h w) - D(c(h w)), 0) / c(h) + gamma(h) P_{m-1}(w | h'),
    gamma(h)   = (D1 N1(h .) + D2 N2(h .) + D3+ N3+(h .)) / c(h),

with c(h) = sum_w c(h w) and Nk(h .) the number of bytes w with c(h w) = k (3 or more for
N3+). The top level (m = n-1) counts occurrences in train; every lower level counts
continuations instead, c(h w) = N1+(. h w), the number of distinct bytes seen before h w. A
context that the level never saw (c(h) = 0) passes P_{m-1} through unchanged. The bottom,
P_0(w), is the add-one unigram, so order 1 is the unigram baseline.

Protocol (`ngram`): the counts come from train only; val is scored with the end of train as
its left context and picks the order; held_out is scored, with the same counts, with the end
of train + val as its left context. So every scored byte, the first ones included, sees a full
context of n-1 bytes; only a byte with fewer than n-1 bytes before it in train + val + held_out
(a tiny train) backs off to the levels its history allows.

Contexts are integer-encoded, the oldest byte in the highest bits (a gram of up to 8 bytes in
one uint64), counted with np.unique and looked up with np.searchsorted: no Python loop per byte.
"""

from __future__ import annotations

import lzma
import math
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from seqbench.data.text import byte_counts

MAX_ORDER = 8  # a gram of 8 bytes fills one uint64; also the default max_order
NGRAM_FIT_BYTES = 2 * 2**20  # the n-gram counts at most the last 2 MiB of train
NGRAM_ORDER_BYTES = 2**20  # and chooses its order on at most the first 1 MiB of val
CHUNK = 2**20  # bytes scored or compressed at a time

COMPRESSORS: dict[
    str, Callable[[], Any]
] = {  # a fresh streaming compressor, as zlib.compress / lzma.compress
    "zlib": lambda: zlib.compressobj(9),
    "lzma": lambda: lzma.LZMACompressor(preset=9 | lzma.PRESET_EXTREME),
}


@dataclass(frozen=True)
class LMScore:
    """Mean negative log-likelihood of `n_bytes` scored bytes; `order` for an n-gram model."""

    nats: float
    n_bytes: int
    order: int | None = None
    val_bits_per_byte: list[float] | None = None  # per order 1..max_order, for an n-gram model
    fit_bytes: int | None = None  # train bytes an n-gram model counted
    order_bytes: int | None = None  # val bytes that chose its order

    @property
    def bits_per_byte(self) -> float:
        return self.nats / math.log(2)

    @property
    def perplexity(self) -> float:
        return math.exp(self.nats)

    def as_dict(self) -> dict:
        """Plain floats and ints, ready for metrics.json."""
        out = {"nats": float(self.nats), "bits_per_byte": self.bits_per_byte, "perplexity": self.perplexity}
        if self.order is not None:
            out["order"] = int(self.order)
        if self.val_bits_per_byte is not None:
            out["val_bits_per_byte"] = [float(b) for b in self.val_bits_per_byte]
        for key in ("fit_bytes", "order_bytes"):
            if getattr(self, key) is not None:
                out[key] = int(getattr(self, key))
        return out


def as_bytes(text: np.ndarray | bytes, name: str, allow_empty: bool = True) -> np.ndarray:
    """`text` as a 1-D uint8 array; bytes are accepted too. ValueError for anything else."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = np.frombuffer(bytes(text), dtype=np.uint8)
    if not isinstance(text, np.ndarray) or text.dtype != np.uint8 or text.ndim != 1:
        kind = f"{text.dtype} array of shape {text.shape}" if isinstance(text, np.ndarray) else type(text)
        raise ValueError(f"{name} must be a 1-D uint8 array of bytes, got a {kind}")
    if not allow_empty and len(text) == 0:
        raise ValueError(f"{name} is empty: there are no bytes to score")
    return text


def last_bytes(k: int, *parts: np.ndarray) -> np.ndarray:
    """(<= k,) the last k bytes of the parts joined, without joining more than those."""
    tail: list[np.ndarray] = []
    for part in reversed(parts):
        need = k - sum(len(t) for t in tail)
        if need <= 0:
            break
        tail.insert(0, part[max(0, len(part) - need) :])
    return np.concatenate(tail) if tail else np.zeros(0, dtype=np.uint8)


# --- unigram ---------------------------------------------------------------------------------


def unigram_probs(train: np.ndarray) -> np.ndarray:
    """(256,) add-one smoothed byte frequencies: (c(w) + 1) / (len(train) + 256)."""
    counts = byte_counts(train).astype(np.float64)  # (256,)
    return (counts + 1.0) / (len(train) + 256.0)


def unigram(train: np.ndarray | bytes, held_out: np.ndarray | bytes) -> LMScore:
    """Add-one smoothed byte frequencies fit on train, scored on held_out (by its byte counts)."""
    train = as_bytes(train, "train")
    held_out = as_bytes(held_out, "held_out", allow_empty=False)
    nats = -float(byte_counts(held_out) @ np.log(unigram_probs(train))) / len(held_out)
    return LMScore(nats=nats, n_bytes=len(held_out))


# --- n-gram counts ---------------------------------------------------------------------------


def gram_codes(text: np.ndarray, length: int) -> np.ndarray:
    """(len(text) - length + 1,) uint64: the gram of `length` bytes ending at each position from
    length - 1 on, the oldest byte in the highest bits."""
    if len(text) < length:
        return np.zeros(0, dtype=np.uint64)
    s = text.astype(np.uint64)  # (N,)
    codes = s
    for k in range(2, length + 1):
        codes = (s[: len(s) - k + 1] << np.uint64(8 * (k - 1))) | codes[1:]  # (N - k + 1,)
    return codes


def discounts(counts: np.ndarray) -> np.ndarray:
    """(3,) modified Kneser-Ney discounts D1, D2, D3+ from the count-of-counts n1..n4 of one level
    (Chen & Goodman's equation (26)), each clipped to [0.1, k]. Where some nk is 0 (a tiny or
    periodic text), the fixed (0.5, 1.0, 1.5)."""
    n = np.array([np.sum(counts == k) for k in (1, 2, 3, 4)], dtype=np.float64)  # n1..n4
    if np.any(n == 0):
        return np.array([0.5, 1.0, 1.5])
    y = n[0] / (n[0] + 2 * n[1])
    d = np.array([1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / n[2]])
    return np.clip(d, 0.1, [1.0, 2.0, 3.0])


@dataclass(frozen=True)
class Level:
    """One level of the model: counts c(h w) of grams h w (sorted codes) and, per context h
    (sorted codes), c(h) and the numerator of gamma(h)."""

    grams: np.ndarray  # (G,) uint64, sorted
    counts: np.ndarray  # (G,) int64
    contexts: np.ndarray  # (H,) uint64, sorted
    totals: np.ndarray  # (H,) float64: c(h)
    gamma_num: np.ndarray  # (H,) float64: D1 N1(h .) + D2 N2(h .) + D3+ N3+(h .)
    d: np.ndarray  # (3,) D1, D2, D3+

    @classmethod
    def from_counts(cls, grams: np.ndarray, counts: np.ndarray) -> Level:
        d = discounts(counts)
        ctx = grams >> np.uint64(8)  # (G,) sorted, since grams are
        starts = np.flatnonzero(np.r_[True, ctx[1:] != ctx[:-1]]) if len(ctx) else np.zeros(0, int)
        per = np.minimum(counts, 3) - 1  # (G,) 0, 1, 2 for count 1, 2, 3+
        gamma_terms = d[per] if len(per) else np.zeros(0)
        reduce = (lambda x: np.add.reduceat(x, starts)) if len(starts) else (lambda x: np.zeros(0))
        return cls(
            grams=grams,
            counts=counts,
            contexts=ctx[starts],
            totals=reduce(counts.astype(np.float64)),
            gamma_num=reduce(gamma_terms),
            d=d,
        )

    def lookup_grams(self, q: np.ndarray) -> np.ndarray:
        """(Q,) c(h w) of each queried gram, 0 where unseen."""
        idx, found = _find(self.grams, q)
        return np.where(found, self.counts[idx], 0)

    def lookup_contexts(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(Q,) each: whether train shows context h, c(h), gamma numerator (1 and 0 where unseen)."""
        idx, found = _find(self.contexts, q)
        return found, np.where(found, self.totals[idx], 1.0), np.where(found, self.gamma_num[idx], 0.0)


def _find(keys: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of each query in the sorted `keys` (clipped) and whether it is there."""
    if len(keys) == 0:
        return np.zeros(len(q), dtype=np.intp), np.zeros(len(q), dtype=bool)
    idx = np.minimum(np.searchsorted(keys, q), len(keys) - 1)
    return idx, keys[idx] == q


@dataclass(frozen=True)
class NGramModel:
    """Counts of train for every order up to max_order: `raw[m]` and `cont[m]` are the levels
    with context length m (grams of m + 1 bytes), by occurrences and by continuations."""

    max_order: int
    unigram: np.ndarray  # (256,) add-one P_0
    raw: dict[int, Level]  # m = 1..max_order-1
    cont: dict[int, Level]  # m = 1..max_order-2

    def level(self, order: int, m: int) -> Level:
        """The level of context length m in the model of `order`: occurrences at the top."""
        return self.raw[m] if m == order - 1 else self.cont[m]


def fit_ngram(train: np.ndarray | bytes, max_order: int = MAX_ORDER) -> NGramModel:
    """Count train for every order 1..max_order (at most 8)."""
    train = as_bytes(train, "train")
    _check_order(max_order)
    unique = {}  # gram length -> (sorted unique codes, counts)
    for length in range(2, max_order + 1):
        unique[length] = np.unique(gram_codes(train, length), return_counts=True)
    raw = {length - 1: Level.from_counts(*unique[length]) for length in range(2, max_order + 1)}
    cont = {}
    for length in range(2, max_order):
        longer = unique[length + 1][0]  # (G,) distinct grams one byte longer
        suffix = longer & np.uint64((1 << (8 * length)) - 1)  # (G,) each with its oldest byte dropped
        cont[length - 1] = Level.from_counts(*np.unique(suffix, return_counts=True))
    return NGramModel(max_order=max_order, unigram=unigram_probs(train), raw=raw, cont=cont)


def _check_order(order: int, model: NGramModel | None = None) -> None:
    if not isinstance(order, (int, np.integer)) or not 1 <= order <= MAX_ORDER:
        raise ValueError(f"an n-gram order must be an integer in 1..{MAX_ORDER}, got {order!r}")
    if model is not None and order > model.max_order:
        raise ValueError(f"order {order} is above the model's max_order {model.max_order}")


def interpolate(
    model: NGramModel, order: int, grams: list[np.ndarray], valid: list[np.ndarray]
) -> np.ndarray:
    """(Q,) P_order(w | h) of Q queries. grams[m]: (Q,) uint64, the query's last m + 1 bytes
    (grams[0] is w itself); valid[m]: (Q,) bool, whether the query has m bytes of history."""
    p = model.unigram[grams[0].astype(np.intp)]  # (Q,) P_0(w)
    for m in range(1, order):
        level = model.level(order, m)
        c = level.lookup_grams(grams[m])  # (Q,) c(h w)
        seen, total, gamma_num = level.lookup_contexts(grams[m] >> np.uint64(8))  # (Q,) each
        d = np.where(c > 0, level.d[np.clip(c, 1, 3) - 1], 0.0)  # (Q,) D(c(h w))
        p = np.where(seen & valid[m], (np.maximum(c - d, 0.0) + gamma_num * p) / total, p)  # (Q,)
    return p


def ngram_log_probs(
    model: NGramModel, order: int, context: np.ndarray | bytes, target: np.ndarray | bytes
) -> np.ndarray:
    """(len(target),) ln P_order of each target byte, the bytes before it in context + target as
    its history (only the last order - 1 bytes of context matter)."""
    _check_order(order, model)
    context, target = as_bytes(context, "context"), as_bytes(target, "target")
    tail = context[max(0, len(context) - (order - 1)) :]
    full = np.concatenate([tail, target])  # (P + T,)
    grams, valid = [target.astype(np.uint64)], [np.ones(len(target), dtype=bool)]
    for m in range(1, order):
        codes = gram_codes(full, m + 1)  # ends at positions m.. of full
        skip = min(len(target), max(0, m - len(tail)))  # the first targets lack m bytes of history
        grams.append(np.r_[np.zeros(skip, dtype=np.uint64), codes[len(tail) + skip - m :]])  # (T,)
        valid.append(np.arange(len(target)) >= skip)
    return np.log(interpolate(model, order, grams, valid))


def ngram_nats(model: NGramModel, order: int, context: np.ndarray, target: np.ndarray) -> float:
    """Mean -ln P_order of the target bytes (as `ngram_log_probs`), scored CHUNK bytes at a time."""
    total = 0.0
    for i in range(0, len(target), CHUNK):
        history = last_bytes(order - 1, context, target[:i])  # (<= order - 1,)
        total -= float(np.sum(ngram_log_probs(model, order, history, target[i : i + CHUNK])))
    return total / len(target)


def next_byte_probs(model: NGramModel, order: int, context: np.ndarray | bytes) -> np.ndarray:
    """(256,) P_order(w | context) for every byte w: they sum to 1."""
    _check_order(order, model)
    context = as_bytes(context, "context")
    w = np.arange(256, dtype=np.uint64)
    grams, valid = [w], [np.ones(256, dtype=bool)]
    for m in range(1, order):
        have = m <= len(context)
        h = gram_codes(context[-m:], m)[0] if have else np.uint64(0)
        grams.append((h << np.uint64(8)) | w)
        valid.append(np.full(256, have))
    return interpolate(model, order, grams, valid)


def ngram(
    train: np.ndarray | bytes,
    val: np.ndarray | bytes,
    held_out: np.ndarray | bytes,
    max_order: int = MAX_ORDER,
    fit_bytes: int = NGRAM_FIT_BYTES,
    order_bytes: int = NGRAM_ORDER_BYTES,
) -> LMScore:
    """The n-gram model fit on the last `fit_bytes` of train, its order the best on the first
    `order_bytes` of val (the smallest on a tie), scored on all of held_out; val sees the end of
    train as its left context, held_out the end of train + val."""
    train = as_bytes(train, "train")
    val = as_bytes(val, "val", allow_empty=False)
    held_out = as_bytes(held_out, "held_out", allow_empty=False)
    model = fit_ngram(train[max(0, len(train) - fit_bytes) :], max_order)
    choose = val[:order_bytes]  # (<= order_bytes,)
    val_nats = [ngram_nats(model, n, train, choose) for n in range(1, max_order + 1)]
    order = int(np.argmin(val_nats)) + 1
    return LMScore(
        nats=ngram_nats(model, order, last_bytes(max_order - 1, train, val), held_out),
        n_bytes=len(held_out),
        order=order,
        val_bits_per_byte=[nats / math.log(2) for nats in val_nats],
        fit_bytes=min(len(train), fit_bytes),
        order_bytes=len(choose),
    )


# --- compressors -----------------------------------------------------------------------------


def compressed(held_out: np.ndarray | bytes, method: str) -> float:
    """Bits per byte of held_out compressed alone: compressed size * 8 / len(held_out), fed to the
    compressor CHUNK bytes at a time."""
    held_out = as_bytes(held_out, "held_out", allow_empty=False)
    if method not in COMPRESSORS:
        raise ValueError(f"unknown compressor {method!r}: choose one of {', '.join(COMPRESSORS)}")
    compressor = COMPRESSORS[method]()
    size = sum(len(compressor.compress(held_out[i : i + CHUNK])) for i in range(0, len(held_out), CHUNK))
    return (size + len(compressor.flush())) * 8 / len(held_out)


def lm_baselines(
    train: np.ndarray | bytes,
    val: np.ndarray | bytes,
    held_out: np.ndarray | bytes,
    max_order: int = MAX_ORDER,
) -> dict:
    """Every baseline on held_out, in metrics.json form (plain floats and ints). The unigram and the
    n-gram counts are fit on train alone; val only picks the n-gram's order."""
    out = {
        "unigram": unigram(train, held_out).as_dict(),
        "ngram": ngram(train, val, held_out, max_order, NGRAM_FIT_BYTES, NGRAM_ORDER_BYTES).as_dict(),
    }
    return out | {method: {"bits_per_byte": compressed(held_out, method)} for method in COMPRESSORS}
