"""The language-model task: a text's bytes in, the next byte's distribution out.

Data: any file, read as bytes (256 values, no decoding), split contiguously into train, val
and test (default 0.9 / 0.05 / 0.05; a test part of 0, nanoGPT's split, scores on val).

Training: an epoch is `train.batches_per_epoch` batches of `seq_len + 1` bytes at random
offsets of the training part; the model reads bytes 0..L-1 and is scored (cross-entropy, in
nats) on predicting bytes 1..L, every step, from a zero state.

Evaluation (validation loss, and the scores in metrics.json): every byte of the held-out part
is scored exactly once, as -log p(byte | the bytes before it). The part is cut into `STREAMS`
contiguous streams, scored side by side; each stream first reads the `seq_len` bytes before it
(warm-up, not scored; for the first stream they are the end of the part before), then its own
bytes in chunks of `seq_len` with the recurrent state carried from chunk to chunk. Reported:
nats per byte, bits per byte (nats / ln 2) and perplexity (exp(nats)), next to the baselines
of `seqbench.tasks.lm_baselines` on the same bytes.

Memory: the text is held once, a uint8 per byte; training adds a batch of windows, scoring a
chunk of every stream (gathered from the text as it is read), the baselines bounded counts:
none of them grows with the text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from seqbench.errors import SeqbenchError
from seqbench.spec import Spec
from seqbench.tasks.base import Task

VOCAB = 256  # byte values
STREAMS = 16  # held-out streams scored side by side
SAMPLE_PROMPT_BYTES = 64  # samples.txt: the prompt is the held-out part's first bytes
SAMPLE = {"length": 500, "temperature": 0.8, "top_k": 40}  # samples.txt's generation settings
MAX_SAMPLE_LENGTH = 1_000_000  # bytes one `seqbench sample` generates, at most
MIN_TEMPERATURE = 1e-3  # below it sampling is greedy in all but name: use 0
LOSS_BLOCK, MAX_BLOCKS = 64, 4096  # heldout_losses.csv: nats per block of at least 64 bytes


@dataclass
class LoadedText:
    """A text's bytes and where each part lies, with what metrics.json records of the data."""

    data: np.ndarray  # (N,) uint8
    parts: dict[str, tuple[int, int]]  # train / val / test -> [start, end) byte offsets
    info: dict[str, Any]  # sha256, label, source, bytes, distinct, parts

    def part(self, name: str) -> np.ndarray:
        start, end = self.parts[name]
        return self.data[start:end]

    @property
    def held_out(self) -> str:
        """The part the scores are quoted on: test, or val when the split has no test part."""
        start, end = self.parts["test"]
        return "test" if end > start else "val"


class ByteWindows:
    """Training batches: windows of seq_len + 1 bytes at random offsets (the loop's TrainData)."""

    def __init__(self, text: np.ndarray, seq_len: int, n_samples: int) -> None:
        self.text, self.seq_len, self.n_samples = text, seq_len, n_samples
        self.steps = np.arange(seq_len + 1)  # (L + 1,)

    def __len__(self) -> int:
        return self.n_samples

    def epoch_ids(self, rng: np.random.Generator, shuffle: bool) -> np.ndarray:
        """The start offsets of an epoch's windows (random whether or not train.shuffle is set)."""
        return rng.integers(0, len(self.text) - self.seq_len, size=self.n_samples)

    def batch(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """x (B, L) the bytes read, y (B, L) the bytes to predict (x shifted by one), int64."""
        window = self.text[ids[:, None] + self.steps].astype(np.int64)  # (B, L + 1)
        return window[:, :-1], window[:, 1:]


@dataclass
class TextTraining:
    """What an LM run trains and validates on, with the text it came from."""

    train: ByteWindows
    val: HeldOutText
    loaded: LoadedText
    held_out_losses: np.ndarray | None = None  # nats per block of the held-out part, once scored


class HeldOutText:
    """A held-out part and the text before it; `loss` is its nats per byte (the loop's Validation)."""

    def __init__(self, before: np.ndarray, text: np.ndarray, seq_len: int) -> None:
        self.before, self.text, self.seq_len = before, text, seq_len

    def loss(self, learner: Any) -> float:
        return score_text(learner, self.before, self.text, self.seq_len)


def score_text(
    learner: Any, before: np.ndarray, text: np.ndarray, seq_len: int, streams: int = STREAMS
) -> float:
    """Mean nats per byte of `text`, every byte scored once, given the bytes before it (see the module doc).

    `before` is the text preceding `text` (at least one byte); `learner` has `initial_state`
    and `forward_state` (outputs at every step: next-byte logits).
    """
    return score_text_blocks(learner, before, text, seq_len, streams)[0]


def block_size(n: int) -> int:
    """Bytes per block of a held-out part of n bytes: at least LOSS_BLOCK, at most ~MAX_BLOCKS blocks."""
    return max(LOSS_BLOCK, -(-n // MAX_BLOCKS))


def score_text_blocks(
    learner: Any, before: np.ndarray, text: np.ndarray, seq_len: int, streams: int = STREAMS, block: int = 0
) -> tuple[float, np.ndarray]:
    """`score_text`, and with `block` > 0 the nats summed over each block of `block` bytes of `text`
    ((ceil(N / block),), the last block shorter), else an empty array.

    Memory is bounded by a chunk (streams x seq_len bytes, and the model's outputs on them), never
    by the text: each chunk's inputs and targets are gathered from `before` and `text` as it is read.
    """
    n = len(text)
    if n == 0:
        raise ValueError("nothing to score: the held-out text is empty")
    if len(before) == 0:
        raise ValueError("nothing before the held-out text: the first byte has no input to predict it")
    lead_bytes = before[-(seq_len + 1) :]  # (W,) the bytes before `text` a stream may read
    lead = len(lead_bytes)  # positions below `lead` are in lead_bytes, the others in `text`

    def read(positions: np.ndarray) -> np.ndarray:
        """int64 bytes at `positions` of lead_bytes + text (clipped to its end), without joining them."""
        return _gather(lead_bytes, text, np.minimum(positions, lead + n - 1))

    S = max(1, min(streams, n // max(seq_len, 1)))
    m = -(-n // S)  # targets per stream; the last stream is padded and masked
    starts = np.arange(S) * m  # (S,) first target of each stream, in `text` coordinates
    warm = min(seq_len, lead - 1)  # warm-up bytes read before a stream's first input byte
    # the input predicting text[i] is at lead + i - 1; a stream reads warm bytes before that
    first_input = lead + starts - 1 - warm  # (S,)
    state = learner.initial_state(S)
    if warm:
        _, state = learner.forward_state(read(first_input[:, None] + np.arange(warm)), state)  # (S, warm)
    total = 0.0
    n_blocks = -(-n // block) if block > 0 else 0
    block_nats = np.zeros(n_blocks)  # (n_blocks,)
    for c in range(0, m, seq_len):
        steps = np.arange(c, min(c + seq_len, m))  # (C,) this chunk's steps of every stream
        position = starts[:, None] + steps  # (S, C) the targets' index into `text`
        logits, state = learner.forward_state(read(first_input[:, None] + warm + steps), state)  # (S, C, V)
        log_p = log_softmax(logits)
        chunk_targets = read(lead + position)  # (S, C)
        picked = np.take_along_axis(log_p, chunk_targets[..., None], axis=-1)[..., 0]  # (S, C)
        chunk_valid = position < n  # (S, C) padding of the last stream
        total -= float(np.sum(picked, where=chunk_valid))
        if n_blocks:
            block_nats -= np.bincount(position[chunk_valid] // block, picked[chunk_valid], minlength=n_blocks)
    return total / n, block_nats


def _gather(head: np.ndarray, text: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """int64 bytes at `positions` (each below len(head) + len(text)) of head followed by text."""
    k = len(head)
    in_head = positions < k
    return np.where(in_head, head[np.minimum(positions, k - 1)], text[np.maximum(positions - k, 0)]).astype(
        np.int64
    )


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log softmax over the last axis, in float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def scores(nats: float) -> dict[str, float]:
    """nats per byte -> the three ways LM results are quoted."""
    return {"nats": nats, "bits_per_byte": nats / math.log(2), "perplexity": math.exp(min(nats, 700.0))}


# ---- data --------------------------------------------------------------------------------------


def load_text(spec: Spec, data_dir: Path) -> LoadedText:
    """The spec's text (a file, or a downloaded corpus cached in data_dir) and its parts."""
    import hashlib

    from seqbench.data.text import byte_counts, download_corpus, read_text_bytes, split_bytes

    ds = spec.dataset
    source = {
        "source": "text",
        **({"name": ds.name} if ds.name else {}),
        **({"path": ds.path} if ds.path else {}),
    }
    path = Path(ds.path) if ds.path else download_corpus(str(ds.name), data_dir)  # a path wins: a local copy
    data = read_text_bytes(path)
    train, val, test = split_bytes(data, tuple(ds.split), min_len=ds.seq_len + 1, label=str(path))
    parts = {"train": (0, len(train)), "val": (len(train), len(train) + len(val))}
    parts["test"] = (parts["val"][1], parts["val"][1] + len(test))
    info = {
        **source,
        "label": ds.label,
        "sha256": hashlib.sha256(data).hexdigest(),  # the array's own buffer: no copy
        "bytes": len(data),
        "distinct_bytes": int(np.count_nonzero(byte_counts(data))),
        "parts": {name: list(span) for name, span in parts.items()},
    }
    return LoadedText(data, parts, info)


def training_data(spec: Spec, loaded: LoadedText) -> tuple[ByteWindows, HeldOutText]:
    """What `fit` reads: random training windows, and the validation part with the text before it."""
    seq_len = spec.dataset.seq_len
    n_samples = spec.train.batches_per_epoch * spec.train.batch_size
    val_start = loaded.parts["val"][0]
    return (
        ByteWindows(loaded.part("train"), seq_len, n_samples),
        HeldOutText(loaded.data[:val_start], loaded.part("val"), seq_len),
    )


ARTIFACTS = ("samples.txt", "loss_curve.png", "heldout_losses.csv")


def held_out_losses_csv(spec: Spec, training: TextTraining, learner: Any) -> str:
    """heldout_losses.csv: the held-out part in blocks (`block_size`), each block's first byte,
    its length and its mean nats per byte: what a Diebold-Mariano test of two runs pairs."""
    loaded = training.loaded
    start, end = loaded.parts[loaded.held_out]
    block = block_size(end - start)
    block_nats = training.held_out_losses
    if block_nats is None:  # e.g. a resumed run writing its missing files: score the part again
        before, text = loaded.data[:start], loaded.part(loaded.held_out)
        block_nats = score_text_blocks(learner, before, text, spec.dataset.seq_len, block=block)[1]
    starts = np.arange(len(block_nats)) * block  # (n_blocks,)
    lengths = np.minimum(starts + block, end - start) - starts
    rows = "".join(
        f"{s},{b},{nats / b!r}\n"
        for s, b, nats in zip(starts.tolist(), lengths.tolist(), block_nats.tolist(), strict=True)
    )
    return "start,bytes,nats\n" + rows


# ---- evaluation ----------------------------------------------------------------------------------


def held_out_scores(spec: Spec, loaded: LoadedText, learner: Any, trained: bool) -> dict[str, Any]:
    """metrics.json's `val`, `test` (null without a test part) and `baselines` on the held-out part."""
    from seqbench.tasks.lm_baselines import lm_baselines

    seq_len = spec.dataset.seq_len
    out: dict[str, Any] = {}
    held = loaded.held_out
    for name in ("val", "test"):
        start, end = loaded.parts[name]
        if end > start and trained:
            block = block_size(end - start) if name == held else 0
            nats, block_nats = score_text_blocks(
                learner, loaded.data[:start], loaded.part(name), seq_len, block=block
            )
            if name == held:
                out["block_nats"] = block_nats
            out[name] = {**scores(nats), "bytes": end - start}
        else:
            out[name] = None
    start, end = loaded.parts[held]
    if held == "test":
        train, val = loaded.part("train"), loaded.part("val")
    else:  # scored on val: the n-gram chooses its order on the end of train instead
        cut = int(len(loaded.part("train")) * 0.95)
        train, val = loaded.data[:cut], loaded.data[cut:start]
    out["baselines"] = lm_baselines(train, val, loaded.data[start:end])
    out["held_out"] = held
    return out


# ---- generation ------------------------------------------------------------------------------


def generate(
    learner: Any,
    prompt: bytes,
    length: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
) -> bytes:
    """`length` bytes after `prompt`, one step of the recurrent mode per byte (constant time each).

    Sampling: softmax(logits / temperature) over the `top_k` most likely bytes; temperature 0 is
    greedy. The learner's `decoder` reads the prompt with the parallel forward (its state carried), then
    each byte with its `step_function`.
    """
    check_sampling(prompt, length, temperature, top_k)
    rng = np.random.default_rng(seed)
    ids = np.frombuffer(prompt, dtype=np.uint8).astype(np.int64)
    decoder = learner.decoder()  # the learner, or a Torch learner's NumPy twin (TorchLearner.decoder)
    state = decoder.initial_state(1)
    if len(ids) > 1:
        _, state = decoder.forward_state(ids[None, :-1], state)
    step = decoder.step_function()  # `step` on weights prepared once for the whole generation
    last, out = ids[-1:], bytearray()
    for i in range(length):
        logits, state = step(last, state)  # (1, V)
        if not np.isfinite(logits).all():
            raise SeqbenchError(
                f"the model's next-byte scores are not finite (NaN or inf) at generated byte {i + 1}; "
                "its weights are damaged or too large to sample from: train the run again"
            )
        byte = sample_byte(logits[0], temperature, top_k, rng)
        out.append(byte)
        last = np.array([byte], dtype=np.int64)
    return bytes(out)


def check_sampling(prompt: bytes, length: int, temperature: float, top_k: int | None) -> None:
    """The settings of a generation, or a SeqbenchError that names the option at fault."""
    if not prompt:
        raise SeqbenchError("the prompt is empty; give at least one byte, e.g. --prompt 'ROMEO:'")
    if not 1 <= length <= MAX_SAMPLE_LENGTH:
        raise SeqbenchError(f"--length must be between 1 and {MAX_SAMPLE_LENGTH:,} bytes, got {length}")
    if not (temperature == 0 or MIN_TEMPERATURE <= temperature < math.inf):
        raise SeqbenchError(
            f"--temperature must be 0 (always the likeliest byte) or a finite number >= {MIN_TEMPERATURE:g}, "
            f"got {temperature!r}"
        )
    if top_k is not None and not 1 <= top_k <= VOCAB:
        raise SeqbenchError(f"--top-k must be between 1 and {VOCAB} ({VOCAB}: every byte), got {top_k}")


def sample_byte(logits: np.ndarray, temperature: float, top_k: int | None, rng: np.random.Generator) -> int:
    """One byte from (V,) logits: greedy at temperature 0, else softmax(logits / T) over the top k."""
    logits = np.asarray(logits, dtype=np.float64)
    if temperature == 0:
        return int(np.argmax(logits))
    if top_k is not None and top_k < len(logits):
        cut = np.partition(logits, -top_k)[-top_k]
        logits = np.where(logits >= cut, logits, -np.inf)
    p = np.exp(log_softmax(logits / temperature))
    # rng.choice(len(p), p=p / p.sum())'s own draw (its cumulative sum, one uniform, searchsorted),
    # without its checks of p: the same byte from the same generator, in 2/3 of the time
    cdf = (p / p.sum()).cumsum()
    cdf /= cdf[-1]
    return int(cdf.searchsorted(rng.random(), side="right"))


def samples_text(spec: Spec, loaded: LoadedText, learner: Any) -> bytes:
    """samples.txt: the held-out part's first bytes as the prompt, then a generation from them
    (the `sample_settings`, the run's seed); the raw bytes, prompt included."""
    settings = sample_settings(spec, loaded)
    prompt = loaded.part(loaded.held_out)[: settings["prompt_bytes"]].tobytes()
    text = generate(learner, prompt, SAMPLE["length"], SAMPLE["temperature"], SAMPLE["top_k"], spec.seed)
    return prompt + text


def sample_settings(spec: Spec, loaded: LoadedText) -> dict[str, Any]:
    """How samples.txt was made (recorded in metrics.json)."""
    start, end = loaded.parts[loaded.held_out]
    prompt = min(end - start, SAMPLE_PROMPT_BYTES)
    return {
        "prompt": f"the first {prompt} bytes of {loaded.held_out}",
        "prompt_bytes": prompt,
        **SAMPLE,
        "seed": spec.seed,
    }


class LMTask(Task):
    """The language-model task (see the module doc): `loaded` a LoadedText, `data` its TextTraining."""

    name: ClassVar[str] = "lm"
    artifacts: ClassVar[tuple[str, ...]] = ARTIFACTS

    def prepare(self) -> Any:
        """The text (`loaded`), what training reads (`data`: `.train` random windows, `.val` the
        validation part); the model."""
        from seqbench.training.learners import build_learner

        self.loaded = loaded = load_text(self.spec, self.data_dir)
        self.data = TextTraining(*training_data(self.spec, loaded), loaded)
        return build_learner(self.spec, VOCAB, VOCAB, vocab_size=VOCAB, loss="cross_entropy")

    def header(self) -> list[str]:
        """The data line a run prints first."""
        spec, loaded = self.spec, self.loaded
        sizes = ", ".join(f"{name} {end - start:,}" for name, (start, end) in loaded.parts.items())
        return [
            (
                f"data {spec.dataset.label}: {loaded.info['bytes']:,} bytes "
                f"({loaded.info['distinct_bytes']} distinct); {sizes} bytes; scores on {loaded.held_out}"
            )
        ]

    def memory_hint(self, stage: str) -> str:
        """What fills the memory while `stage` ("training" or "evaluating") and what to lower. The
        text is held once, a byte per byte; training adds a batch, scoring a chunk of every stream and the
        baselines' bounded counts (`seqbench.tasks.lm_baselines`): neither grows with the text."""
        spec, training = self.spec, self.data
        L, text = spec.dataset.seq_len, f"a text of {training.loaded.info['bytes']:,} bytes held in memory"
        if stage == "training":
            return (
                f"{text}, batches of {spec.train.batch_size} windows of {L} bytes through a model of "
                f"hidden size {spec.model.hidden_size}; lower train.batch_size, dataset.seq_len or "
                "model.hidden_size"
            )
        start, end = training.loaded.parts[training.loaded.held_out]
        return (
            f"{text}, its {end - start:,} held-out bytes scored {STREAMS} streams x {L} bytes at a time, "
            "and the n-gram baseline's counts; use a shorter text (a part of the file) or a lower "
            "dataset.seq_len (train.batch_size and train.eval_batch_size do not matter here)"
        )

    @staticmethod
    def headline(metrics: dict[str, Any]) -> float | None:
        """The score an LM run is quoted by: bits per byte on its held-out part."""
        part = metrics.get((metrics.get("headline") or {}).get("split", "test"))
        return None if not isinstance(part, dict) else part.get("bits_per_byte")

    def evaluate(self, learner: Any, fit_result: Any, run_id: str) -> dict[str, Any]:
        """metrics.json of an LM run: the common keys, then nats, bits per byte, perplexity and baselines."""
        spec, loaded, training = self.spec, self.loaded, self.data
        from seqbench.tasks.common import common_config, common_metrics, versions

        trained = fit_result.trained
        held = held_out_scores(spec, loaded, learner, trained)
        training.held_out_losses = held.pop("block_nats", None)  # for heldout_losses.csv
        metrics = common_metrics(spec, learner, fit_result, run_id)
        metrics["config"] = {
            **common_config(spec),
            "batches_per_epoch": spec.train.batches_per_epoch,
            "split": list(spec.dataset.split),
        }
        metrics.update(
            {
                "headline": {"metric": "bits_per_byte", "split": held["held_out"]},
                "test": held["test"],
                "val": held["val"],
                "baselines": held["baselines"],
                "data": loaded.info,
                "samples": sample_settings(spec, loaded),
                "versions": versions(),
            }
        )
        return metrics

    def artifact_writers(self, learner: Any, history: Any) -> dict[str, Any]:
        """samples.txt (the loss curve is every task's: seqbench.run.experiment)."""
        spec, training = self.spec, self.data
        from seqbench.io import atomic_write_bytes

        def write(path: Path) -> None:
            atomic_write_bytes(path, samples_text(spec, training.loaded, learner))

        def write_losses(path: Path) -> None:
            atomic_write_bytes(path, held_out_losses_csv(spec, training, learner).encode("utf-8"))

        return {"samples.txt": write, "heldout_losses.csv": write_losses}
