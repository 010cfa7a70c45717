import json
import math
import zlib
from collections import Counter, defaultdict

import numpy as np
import pytest

from seqbench.tasks.lm_baselines import (
    MAX_ORDER,
    compressed,
    discounts,
    fit_ngram,
    gram_codes,
    lm_baselines,
    next_byte_probs,
    ngram,
    ngram_log_probs,
    unigram,
)


def as_array(text: bytes) -> np.ndarray:
    return np.frombuffer(text, dtype=np.uint8)


def markov_text(n: int, seed: int = 0, alphabet: int = 6) -> np.ndarray:
    """A byte text over a few letters whose next letter depends on the two before it."""
    rng = np.random.default_rng(seed)
    table = rng.dirichlet(np.full(alphabet, 0.3), size=(alphabet, alphabet))  # (A, A, A)
    out = [0, 1]
    for u in rng.random(n - 2):
        out.append(int(np.searchsorted(np.cumsum(table[out[-2], out[-1]]), u * 0.999999)))
    return (np.array(out) + ord("a")).astype(np.uint8)


# --- unigram ---------------------------------------------------------------------------------


def test_unigram_add_one_by_hand():
    # train "abca": c(a) = 2, c(b) = 1, c(c) = 1, N = 4, so P(a) = 3 / 260, P(b) = 2 / 260
    result = unigram(b"abca", b"ab")
    nats = -(math.log(3 / 260) + math.log(2 / 260)) / 2
    assert result.nats == pytest.approx(nats, rel=1e-12)
    assert result.bits_per_byte == pytest.approx(nats / math.log(2), rel=1e-12)
    assert result.perplexity == pytest.approx(math.exp(nats), rel=1e-12)
    assert result.n_bytes == 2


def test_unigram_of_a_constant_text():
    result = unigram(as_array(b"a" * 1000), as_array(b"a" * 100))
    assert result.nats == pytest.approx(-math.log(1001 / 1256), rel=1e-12)


def test_unigram_of_uniform_random_bytes_is_8_bits():
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, 500_000, dtype=np.uint8)
    held_out = rng.integers(0, 256, 50_000, dtype=np.uint8)
    assert unigram(train, held_out).bits_per_byte == pytest.approx(8.0, abs=0.01)
    result = ngram(train[:-5000], train[-5000:], held_out, max_order=3)
    assert result.bits_per_byte == pytest.approx(8.0, abs=0.05)


def test_a_byte_train_never_showed_still_has_a_probability():
    assert np.isfinite(unigram(b"aaaa", b"z").nats)
    assert np.isfinite(ngram(b"abababab", b"ab", b"zz", max_order=3).nats)


# --- n-gram ----------------------------------------------------------------------------------


def test_gram_codes_put_the_oldest_byte_highest():
    assert gram_codes(as_array(b"abc"), 2).tolist() == [ord("a") * 256 + ord("b"), ord("b") * 256 + ord("c")]
    assert gram_codes(as_array(b"ab"), 3).tolist() == []


def test_discounts_by_hand():
    # n1..n4 = 10, 5, 3, 2: Y = 10 / 20; D1 = 1 - 2Y 5/10, D2 = 2 - 3Y 3/5, D3+ = 3 - 4Y 2/3
    counts = np.repeat([1, 2, 3, 4, 9], [10, 5, 3, 2, 7])
    assert discounts(counts) == pytest.approx([0.5, 1.1, 3 - 4 / 3])
    assert discounts(np.array([5, 5, 7])).tolist() == [0.5, 1.0, 1.5]  # no n1..n4: the fixed fallback


def test_order_1_is_the_unigram_baseline():
    text = markov_text(3000)
    model = fit_ngram(text[:2000], 4)
    assert -ngram_log_probs(model, 1, text[:2000], text[2000:]).mean() == pytest.approx(
        unigram(text[:2000], text[2000:]).nats, rel=1e-12
    )


@pytest.mark.parametrize("order", range(1, MAX_ORDER + 1))
def test_next_byte_probabilities_sum_to_one(order):
    model = fit_ngram(markov_text(5000), MAX_ORDER)
    for context in [b"", b"a", b"ab", b"abcabcab", b"zzzzzzzz", b"\x00\xff", b"bbbbbbbbbbbbb"]:
        probs = next_byte_probs(model, order, context)
        assert probs.shape == (256,)
        assert probs.sum() == pytest.approx(1.0, abs=1e-12)
        assert np.all(probs > 0)


def test_next_byte_probs_match_the_scores():
    text = markov_text(3000)
    model = fit_ngram(text, 5)
    for context in [b"", b"c", b"abca", b"fedcba"]:
        scored = np.exp([ngram_log_probs(model, 5, context, bytes([w]))[0] for w in range(256)])
        assert scored == pytest.approx(next_byte_probs(model, 5, context), rel=1e-12)


def test_a_left_context_scores_like_the_text_before_the_target():
    text = markov_text(3000)
    model = fit_ngram(text[:2000], 6)
    context, target = text[2000:2500], text[2500:]
    with_context = ngram_log_probs(model, 6, context, target)
    as_one_text = ngram_log_probs(model, 6, b"", np.concatenate([context, target]))
    assert with_context == pytest.approx(as_one_text[len(context) :], rel=1e-12)
    assert len(with_context) == len(target)


def reference_log_probs(text: bytes, order: int, discount, context: bytes, target: bytes) -> list[float]:
    """Interpolated modified Kneser-Ney one byte at a time, from dicts: the definition."""
    raw = {n: Counter(text[i : i + n] for i in range(len(text) - n + 1)) for n in range(1, 9)}

    def counts(m: int) -> dict[bytes, int]:  # c(h w) for grams of m + 1 bytes
        if m == order - 1:
            return raw[m + 1]
        return Counter(gram[1:] for gram in raw[m + 2])  # N1+(. h w): distinct grams v h w

    def prob(history: bytes, w: int) -> float:
        m = len(history)
        if m == 0:
            return (raw[1][bytes([w])] + 1) / (len(text) + 256)
        lower = prob(history[1:], w)
        table = counts(m)
        by_context = defaultdict(list)
        for gram, c in table.items():
            by_context[gram[:-1]].append(c)
        if history not in by_context:
            return lower
        d = discount(order, m)
        per = by_context[history]
        total = sum(per)
        gamma = sum(d[min(c, 3) - 1] for c in per) / total
        c = table.get(history + bytes([w]), 0)
        return max(c - (d[min(c, 3) - 1] if c else 0), 0) / total + gamma * lower

    full = context + target
    out = []
    for t in range(len(context), len(full)):
        history = full[max(0, t - (order - 1)) : t]
        out.append(math.log(prob(history, full[t])))
    return out


@pytest.mark.parametrize("order", [2, 3, 4, 5])
def test_ngram_matches_the_definition(order):
    text = markov_text(1500, seed=1)
    model = fit_ngram(text[:1200], 5)

    def discount(order_, m):
        return model.level(order_, m).d

    context, target = bytes(text[1100:1200]), bytes(text[1200:1300]) + b"zq"  # two bytes train never saw
    expected = reference_log_probs(bytes(text[:1200]), order, discount, context, target)
    assert ngram_log_probs(model, order, context, target) == pytest.approx(expected, rel=1e-10)
    short = reference_log_probs(bytes(text[:1200]), order, discount, b"", target[:6])  # history < order - 1
    assert ngram_log_probs(model, order, b"", target[:6]) == pytest.approx(short, rel=1e-10)


def context_needed(pattern: bytes) -> int:
    """The shortest context that tells the next byte of the endlessly repeated pattern."""
    cyclic = pattern * 3
    for k in range(1, len(pattern) + 1):
        follows = defaultdict(set)
        for i in range(len(pattern)):
            follows[cyclic[i : i + k]].add(cyclic[i + k])
        if all(len(nexts) == 1 for nexts in follows.values()):
            return k
    raise AssertionError("not periodic")


def test_a_periodic_text_is_learned_by_a_long_enough_order():
    pattern = b"aababbab"  # period 8
    need = context_needed(pattern)
    assert need == 4
    text = as_array(pattern * 3200)
    train, val, held_out = text[:24001], text[24001:24403], text[24403:24803]  # cuts mid-period
    result = ngram(train, val, held_out, max_order=MAX_ORDER)
    assert result.order >= need + 1
    assert result.bits_per_byte < 0.01
    for order, bits in enumerate(result.val_bits_per_byte, start=1):
        assert (bits < 0.01) == (order >= need + 1), (order, bits)
    assert result.n_bytes == len(held_out)


def test_ngram_picks_the_best_order_on_val():
    text = markov_text(20_000, seed=2)
    result = ngram(text[:16_000], text[16_000:18_000], text[18_000:], max_order=5)
    assert result.order == int(np.argmin(result.val_bits_per_byte)) + 1
    assert result.order >= 3  # the text has a two-byte memory
    assert result.bits_per_byte < unigram(text[:16_000], text[18_000:]).bits_per_byte - 0.3


# --- compressors and the dict ----------------------------------------------------------------


def test_compressed_is_bits_per_held_out_byte():
    data = bytes(markov_text(10_000))
    assert compressed(data, "zlib") == len(zlib.compress(data, 9)) * 8 / len(data)
    assert compressed(b"a" * 100_000, "lzma") < 0.1
    assert compressed(np.random.default_rng(0).integers(0, 256, 100_000, dtype=np.uint8), "lzma") > 8


def test_lm_baselines_is_json_ready():
    text = markov_text(12_000, seed=4)
    out = lm_baselines(text[:9000], text[9000:10_000], text[10_000:], max_order=4)
    assert set(out) == {"unigram", "ngram", "zlib", "lzma"}
    assert json.loads(json.dumps(out)) == out
    for name in ("unigram", "ngram"):
        entry = out[name]
        assert type(entry["nats"]) is float
        assert entry["bits_per_byte"] == pytest.approx(entry["nats"] / math.log(2))
        assert entry["perplexity"] == pytest.approx(math.exp(entry["nats"]))
    assert type(out["ngram"]["order"]) is int and 1 <= out["ngram"]["order"] <= 4
    assert len(out["ngram"]["val_bits_per_byte"]) == 4
    assert set(out["zlib"]) == set(out["lzma"]) == {"bits_per_byte"}


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: unigram(b"abc", b""),
        lambda: ngram(b"abc", b"ab", b""),
        lambda: compressed(b"", "zlib"),
        lambda: lm_baselines(b"abc", b"ab", np.zeros(0, dtype=np.uint8)),
    ],
)
def test_an_empty_held_out_is_a_clear_error(call):
    with pytest.raises(ValueError, match="held_out is empty"):
        call()


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="val is empty"):
        ngram(b"abc", b"", b"ab")
    with pytest.raises(ValueError, match="1-D uint8"):
        unigram(np.arange(5), b"ab")
    with pytest.raises(ValueError, match="1-D uint8"):
        unigram("text", b"ab")
    with pytest.raises(ValueError, match="order"):
        ngram(b"abc", b"ab", b"ab", max_order=9)
    with pytest.raises(ValueError, match="order"):
        fit_ngram(b"abc", 0)
    with pytest.raises(ValueError, match="max_order"):
        ngram_log_probs(fit_ngram(b"abc", 2), 3, b"", b"ab")
    with pytest.raises(ValueError, match="max_order"):
        next_byte_probs(fit_ngram(b"abc", 2), 3, b"ab")
    with pytest.raises(ValueError, match="unknown compressor 'gzip'"):
        compressed(b"ab", "gzip")
