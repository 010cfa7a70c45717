"""The LM task's protocol, checked with learners whose exact answer is known: batches, scoring
every held-out byte once with the state carried, and generation in the recurrent mode."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seqbench.errors import SeqbenchError
from seqbench.tasks.lm import ByteWindows, generate, log_softmax, sample_byte, score_text, scores


class BigramLearner:
    """Next-byte log-probs from the previous byte only: log P[prev] (a 256 x 256 table).

    Its state counts the bytes it has read, so a test can see that the state is carried."""

    def __init__(self, seed: int = 0) -> None:
        logits = np.random.default_rng(seed).normal(size=(256, 256)) * 2
        self.log_p = log_softmax(logits)  # (V, V)
        self.read = 0

    def initial_state(self, batch: int) -> np.ndarray:
        return np.zeros(batch, dtype=np.int64)

    def forward_state(self, x: np.ndarray, state: np.ndarray):
        self.read += x.size
        return self.log_p[x], state + x.shape[1]  # (B, L, V)

    def step(self, x_t: np.ndarray, state: np.ndarray):
        return self.log_p[x_t], state + 1  # (B, V)

    def step_function(self):
        return self.step

    def decoder(self):
        return self


def exact_bigram_nats(learner: BigramLearner, before: np.ndarray, text: np.ndarray) -> float:
    previous = np.concatenate([before[-1:], text[:-1]])
    return float(-np.mean(learner.log_p[previous, text]))


@pytest.mark.parametrize("n", [1, 5, 63, 64, 65, 1000, 4099])
@pytest.mark.parametrize("seq_len", [1, 8, 64])
def test_every_held_out_byte_is_scored_once_given_the_bytes_before_it(n, seq_len):
    rng = np.random.default_rng(n)
    before, text = rng.integers(0, 256, size=300), rng.integers(0, 256, size=n)
    learner = BigramLearner()
    nats = score_text(learner, before, text, seq_len)
    assert math.isclose(nats, exact_bigram_nats(learner, before, text), rel_tol=1e-12)


def test_a_short_before_part_still_scores_the_first_byte():
    rng = np.random.default_rng(0)
    text = rng.integers(0, 256, size=500)
    learner = BigramLearner()
    assert math.isclose(
        score_text(learner, text[:1], text[1:], 64), exact_bigram_nats(learner, text[:1], text[1:])
    )


class CountingLearner(BigramLearner):
    """Scores byte t by how many bytes its stream has read: a state that is reset would show."""

    def forward_state(self, x, state):
        B, L = x.shape
        seen = state[:, None] + np.arange(1, L + 1)  # (B, L) bytes read, this one included
        logits = np.zeros((B, L, 256))
        logits[..., 1:] -= 50.0 * (seen > 100)[..., None]  # after 100 bytes: certain of byte 0
        return logits, state + L


def test_the_state_is_carried_across_chunks_within_a_stream():
    """After 100 bytes read the counting model puts all its mass on byte 0: with the state carried,
    every stream's later chunks score byte 0 almost free; a reset state would not."""
    text = np.zeros(16 * 400, dtype=np.int64)
    carried = score_text(CountingLearner(), text[:300], text, seq_len=32)
    assert carried < 0.3 * math.log(256)


def test_byte_windows_are_inputs_and_their_next_bytes():
    text = np.arange(100, dtype=np.uint8)
    windows = ByteWindows(text, seq_len=10, n_samples=7)
    ids = windows.epoch_ids(np.random.default_rng(0), shuffle=True)
    assert len(ids) == len(windows) == 7 and ids.min() >= 0 and ids.max() <= 100 - 11
    x, y = windows.batch(ids)
    assert x.shape == y.shape == (7, 10) and x.dtype == np.int64
    np.testing.assert_array_equal(x, ids[:, None] + np.arange(10))
    np.testing.assert_array_equal(y, x + 1)


def test_scores_are_nats_bits_and_perplexity():
    s = scores(math.log(2) * 2)
    assert math.isclose(s["bits_per_byte"], 2.0) and math.isclose(s["perplexity"], 4.0)


def test_generation_steps_once_per_byte_and_follows_the_model():
    learner = BigramLearner(seed=3)
    greedy = generate(learner, b"ROMEO:", 40, temperature=0)
    assert len(greedy) == 40
    previous = np.frombuffer(b":" + greedy[:-1], dtype=np.uint8)
    np.testing.assert_array_equal(
        np.frombuffer(greedy, dtype=np.uint8), learner.log_p[previous].argmax(axis=1)
    )
    assert learner.read == len(b"ROMEO:") - 1  # the prompt once through forward_state, then steps
    a = generate(BigramLearner(seed=3), b"ROMEO:", 200, temperature=0.8, top_k=5, seed=1)
    b = generate(BigramLearner(seed=3), b"ROMEO:", 200, temperature=0.8, top_k=5, seed=1)
    assert a == b and a != generate(BigramLearner(seed=3), b"ROMEO:", 200, temperature=0.8, top_k=5, seed=2)


def test_top_k_only_samples_the_k_most_likely_bytes():
    logits = np.random.default_rng(0).normal(size=256)
    top = set(np.argsort(logits)[-3:])
    rng = np.random.default_rng(0)
    assert {sample_byte(logits, 1.0, 3, rng) for _ in range(300)} <= top


@pytest.mark.parametrize(("temperature", "top_k"), [(1.0, None), (0.8, 40), (2.5, 3), (1e-3, 256)])
def test_a_byte_is_drawn_as_rng_choice_draws_it(temperature, top_k):
    """The same bytes as numpy's Generator.choice with the same probabilities and generator (samples
    made before the draw was written out keep their bytes)."""
    ours, theirs = np.random.default_rng(7), np.random.default_rng(7)
    for logits in np.random.default_rng(0).normal(0, 3, size=(400, 256)):
        kept = logits if top_k is None else np.where(logits >= np.sort(logits)[-top_k], logits, -np.inf)
        p = np.exp(log_softmax(kept / temperature))
        assert sample_byte(logits, temperature, top_k, ours) == theirs.choice(256, p=p / p.sum())


@pytest.mark.parametrize(
    ("prompt", "temperature", "top_k", "message"),
    [(b"", 1.0, None, "the prompt is empty"), (b"a", -1, None, "--temperature"), (b"a", 1.0, 0, "--top-k")],
)
def test_bad_generation_settings_are_one_line_errors(prompt, temperature, top_k, message):
    with pytest.raises(SeqbenchError, match=message):
        generate(BigramLearner(), prompt, 10, temperature, top_k)
