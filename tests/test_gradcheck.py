"""`gradcheck_models`, the logic behind `seqbench gradcheck`: one row per parameter, worst error."""

import numpy as np
import pytest

from seqbench.checks.gradcheck import (
    GRADCHECK_CONFIGS,
    GRADCHECK_OPTIONS,
    GRADCHECK_VOCAB,
    check_model,
    gradcheck_models,
)
from seqbench.errors import SeqbenchError
from seqbench.models.registry import model_class


def test_one_row_per_parameter_with_entries_summed_over_the_configurations():
    results = gradcheck_models(["mingru"])
    stacked = max(c["n_layers"] for c in GRADCHECK_CONFIGS)
    model = model_class("mingru", "numpy")(2, 2, hidden_size=4, n_layers=stacked)
    assert [r.name for r in results] == list(model.params)
    for r in results:
        assert r.model == "mingru" and r.shape == model.params[r.name].shape
        layer = int(r.name.split(".")[1]) if r.name.startswith("layers.") else 0
        configs = sum(1 for c in GRADCHECK_CONFIGS if layer < c["n_layers"])  # that have this parameter
        assert r.checked == configs * model.params[r.name].size  # every entry of each
        assert r.max_rel_error < 1e-6


def test_the_worst_configuration_is_reported():
    results = {r.name: r for r in gradcheck_models(["gru"])}
    assert not any(r.lm for r in results.values())  # the default checks forecast models
    for config in GRADCHECK_CONFIGS:
        for r in check_model("gru", max_entries=None, **config):
            assert results[r.name].max_rel_error >= r.max_rel_error


def test_a_wrong_gradient_is_caught_only_where_it_is_wrong(broken_gru_backward):
    errors = {r.name: r.max_rel_error for r in gradcheck_models(["gru"])}
    assert errors["layers.0.W_h"] == pytest.approx(0.01 / 2.01, rel=1e-3)  # |1.01 g - g| / (2.01 |g|)
    assert errors["layers.1.W_h"] > 1e-3
    assert all(e < 1e-6 for name, e in errors.items() if not name.endswith("W_h"))


def test_an_unknown_model_fails_before_any_work(monkeypatch):
    monkeypatch.setattr("seqbench.checks.gradcheck.check_model", lambda *a, **k: pytest.fail("ran"))
    with pytest.raises(SeqbenchError, match="unknown model 'lstm'"):
        gradcheck_models(["gru", "lstm"])


def test_small_options_are_accepted_by_their_models():
    for name, options in GRADCHECK_OPTIONS.items():
        try:
            cls = model_class(name, "numpy")
        except SeqbenchError:
            continue  # not in the registry (yet)
        model = cls(2, 1, hidden_size=4, rng=np.random.default_rng(0), **options)
        assert model.n_params > 0


@pytest.mark.parametrize("name", ["mingru", "gru", "mamba"])
def test_language_models_are_checked_on_request_embedding_included(name):
    results = gradcheck_models([name], lm=True)
    model = model_class(name, "numpy")(
        GRADCHECK_VOCAB,
        GRADCHECK_VOCAB,
        hidden_size=4,
        n_layers=max(c["n_layers"] for c in GRADCHECK_CONFIGS),
        vocab_size=GRADCHECK_VOCAB,
        **GRADCHECK_OPTIONS.get(name, {}),
    )
    assert [r.name for r in results] == list(model.params)
    assert results[0].name == "embed.weight" and results[0].shape == (GRADCHECK_VOCAB, 4)
    assert all(r.lm and r.model == name and r.checked > 0 for r in results)
    assert max(r.max_rel_error for r in results) < 1e-6


def test_each_variant_of_mamba_is_checked_in_every_configuration(monkeypatch):
    """Both discretizations, each under every configuration (test_cli's `seqbench gradcheck` shows
    that all of them are exact)."""
    calls = []
    monkeypatch.setattr(
        "seqbench.checks.gradcheck.check_model", lambda name, **kwargs: calls.append(kwargs) or []
    )
    gradcheck_models(["mamba"])
    checked = {(c["model_options"]["discretization"], c["batch"], c["seq_len"]) for c in calls}
    expected = {(d, c["batch"], c["seq_len"]) for d in ("delta_b", "zoh") for c in GRADCHECK_CONFIGS}
    assert checked == expected and all(c["max_entries"] is None for c in calls)
