"""Spec parsing: canonical and short forms, overrides, validation messages."""

import re

import pytest
import yaml

from seqbench.errors import SpecError
from seqbench.spec import apply_overrides, dump_spec, load_spec, parse_override


def write(tmp_path, text, name="spec.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


CANONICAL = """
name: aapl
seed: 3
dataset: {source: yahoo, ticker: AAPL, start: 2010-01-01, target: Close, seq_len: 20}
model: {name: gru, hidden_size: 64}
train: {epochs: 5, lr: 0.01}
"""


def test_canonical_form(tmp_path):
    spec = load_spec(write(tmp_path, CANONICAL))
    assert spec.name == "aapl" and spec.seed == 3
    assert spec.dataset.ticker == "AAPL" and spec.dataset.start.isoformat() == "2010-01-01"
    assert spec.model.name == "gru" and spec.model.hidden_size == 64
    assert spec.train.lr == 0.01 and spec.train.batch_size == 32  # default filled in


def test_short_form_and_default_name(tmp_path):
    spec = load_spec(
        write(
            tmp_path,
            "model: mingru\ndataset: sp500\nlr: 0.01\nhidden_size: 64\nseq_len: 7\n",
            name="my first.yaml",
        )
    )
    assert spec.model.name == "mingru" and spec.model.hidden_size == 64
    assert spec.dataset.source == "builtin" and spec.dataset.name == "sp500" and spec.dataset.seq_len == 7
    assert spec.train.lr == 0.01
    assert spec.name == "my-first"


@pytest.mark.parametrize(
    ("value", "source", "key"),
    [
        ("sp500", "builtin", "name"),
        ("prices.csv", "csv", "path"),
        ("sub/dir/prices", "csv", "path"),
        ("MSFT", "yahoo", "ticker"),
    ],
)
def test_short_dataset_forms(tmp_path, value, source, key):
    spec = load_spec(write(tmp_path, f"dataset: {value}\n"))
    assert spec.dataset.source == source and getattr(spec.dataset, key) == value


def test_overrides_canonical_and_short_keys(tmp_path):
    path = write(tmp_path, CANONICAL)
    spec = load_spec(
        path,
        ["train.lr=3e-3", "hidden_size=16", "model.name=mingru", "seed=9", "dataset.split=[0.6, 0.2, 0.2]"],
    )
    assert spec.train.lr == pytest.approx(3e-3) and spec.model.hidden_size == 16
    assert spec.model.name == "mingru" and spec.seed == 9 and spec.dataset.split == (0.6, 0.2, 0.2)


def test_override_dataset_name_keeps_window_settings(tmp_path):
    spec = load_spec(write(tmp_path, CANONICAL), ["dataset=nasdaq"])
    assert spec.dataset.source == "builtin" and spec.dataset.name == "nasdaq" and spec.dataset.seq_len == 20
    assert spec.dataset.ticker is None


def test_resolved_spec_round_trips(tmp_path):
    spec = load_spec(write(tmp_path, CANONICAL), ["train.lr=0.5"])
    saved = write(tmp_path, dump_spec(spec), name="saved.yaml")
    assert load_spec(saved) == spec
    assert yaml.safe_load(dump_spec(spec))["train"]["patience"] == 5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "model: {hiden_size: 3}\ndataset: sp500\n",
            "unknown key 'model.hiden_size'; did you mean 'model.hidden_size'",
        ),
        ("lerning_rate: 0.1\ndataset: sp500\n", "unknown key 'lerning_rate'"),
        ("lrr: 0.1\ndataset: sp500\n", "did you mean 'train.lr'"),
        ("dataset: sp500\ntrain: {lr: -1}\n", "train.lr: Input should be greater than 0"),
        (
            "dataset: sp500\nmodel: {hidden_size: 0}\n",
            "model.hidden_size: Input should be greater than or equal to 1",
        ),
        (
            "dataset: {source: builtin, name: sp500, split: [0.5, 0.2, 0.2]}\n",
            "split fractions must sum to 1",
        ),
        ("dataset: sp500\nmodel: lstm\n", "unknown model 'lstm'; choose one of: gru, mamba, mingru"),
        (
            "dataset: sp500\ntrain: {optimizer: rmsprop}\n",
            "train.optimizer: Input should be 'sgd', 'adam' or 'adamw'",
        ),
        ("dataset: sp500\nmodel: {backend: jax}\n", "model.backend"),
        ("dataset: {source: csv}\n", "source 'csv' needs dataset.path"),
        ("model: gru\n", "dataset: is required"),
        ("name: ../escape\ndataset: sp500\n", "not a valid run name"),
        ("- a\n- b\n", "a spec must be a mapping"),
        ("dataset: sp500\ntrain: {epochs: many}\n", "train.epochs"),
    ],
)
def test_invalid_specs_give_one_clear_line(tmp_path, text, message):
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, text))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_malformed_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "dataset: sp500\nmodel: [unclosed\n")
    with pytest.raises(SpecError, match=r"spec.yaml:\d+:\d+: malformed YAML"):
        load_spec(path)


def test_python_tags_are_refused_not_executed(tmp_path):
    path = write(tmp_path, "dataset: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(SpecError, match=r"YAML tag '!!python/object/apply:os\.system' is not allowed"):
        load_spec(path)
    assert not (tmp_path / "pwned").exists()


def test_missing_file(tmp_path):
    with pytest.raises(SpecError, match="spec file not found"):
        load_spec(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("train.lr", "expected KEY=VALUE"),
        ("train.lrr=1", "did you mean 'train.lr'"),
        ("nosuch.key=1", "unknown key"),
    ],
)
def test_bad_overrides(item, message, tmp_path):
    with pytest.raises(SpecError, match=message):
        apply_overrides({"dataset": {"source": "builtin", "name": "sp500"}}, [item], tmp_path)


def test_override_values_are_yaml_scalars():
    assert parse_override("train.lr=1e-3") == ("train.lr", 1e-3)
    assert parse_override("train.shuffle=false") == ("train.shuffle", False)
    assert parse_override("name=abc") == ("name", "abc")


def test_override_strings_that_look_like_numbers():
    assert parse_override("train.lr=3e-3") == ("train.lr", 0.003)  # YAML 1.1 reads 3e-3 as text
    assert parse_override("name='1e3'") == ("name", "1e3")  # quoted: stays a string
    assert parse_override("name=run-1e3") == ("name", "run-1e3")


def test_a_numeric_name_is_a_name(tmp_path):
    assert load_spec(write(tmp_path, "name: 2024\ndataset: sp500\n")).name == "2024"


@pytest.mark.parametrize("source", ["csv", "CSV", "yahoo", "builtin", "synthetic"])
def test_a_source_name_as_the_dataset_shorthand_says_what_to_set(source, tmp_path):
    """`--set dataset=csv` meant the CSV source, not a Yahoo ticker named CSV (an offline download)."""
    from seqbench.spec import expand_dataset_shorthand

    with pytest.raises(
        SpecError, match=rf"'{source}' is a source, not a dataset; set dataset.source: {source.lower()}"
    ):
        expand_dataset_shorthand(source, tmp_path)


# ---- task lm ----------------------------------------------------------------------------------


def test_a_text_file_in_the_short_form_is_a_language_model_with_its_defaults(tmp_path):
    spec = load_spec(write(tmp_path, "model: mingru\ndataset: corpus/plays.txt\n"))
    assert spec.task == "lm" and spec.dataset.source == "text" and spec.dataset.path == "corpus/plays.txt"
    assert spec.dataset.seq_len == 256 and spec.dataset.split == (0.9, 0.05, 0.05)
    assert spec.dataset.label == "plays"


def test_a_corpus_name_is_a_text_dataset_and_lm_takes_nanogpts_split(tmp_path):
    spec = load_spec(
        write(tmp_path, "dataset: tinyshakespeare\nseq_len: 64\n"), ["dataset.split=[0.9, 0.1, 0]"]
    )
    assert (spec.task, spec.dataset.name, spec.dataset.seq_len) == ("lm", "tinyshakespeare", 64)
    assert spec.dataset.split == (0.9, 0.1, 0.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("task: lm\ndataset: sp500\n", "task lm reads a text file: set dataset.source: text"),
        (
            "task: forecast\ndataset: {source: text, path: a.txt}\n",
            "a text dataset is for task: lm",
        ),
        (
            "dataset: {source: builtin, name: sp500, split: [0.8, 0.2, 0]}\n",
            "every split fraction must be > 0 for a forecast (a test part of 0 is for task: lm)",
        ),
        ("task: lm\ndataset: {source: text}\n", "source 'text' needs dataset.path (a file) or dataset.name"),
    ],
)
def test_a_task_and_its_data_must_fit(tmp_path, text, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        load_spec(write(tmp_path, text))


def test_config_id_of_a_forecast_ignores_lm_keys_and_of_an_lm_its_forecast_keys(tmp_path):
    from seqbench.spec import config_id

    forecast = load_spec(write(tmp_path, "dataset: sp500\n"))
    assert config_id(forecast) == config_id(
        load_spec(write(tmp_path, "dataset: sp500\nbatches_per_epoch: 7\n"))
    )
    lm = load_spec(write(tmp_path, "dataset: a.txt\n"))
    assert config_id(lm) == config_id(load_spec(write(tmp_path, "dataset: a.txt\nscaler: standard\n")))
    assert config_id(lm) != config_id(load_spec(write(tmp_path, "dataset: a.txt\nbatches_per_epoch: 7\n")))


def test_train_loss_mse_keeps_older_config_ids_and_another_loss_is_its_own_config(tmp_path):
    from seqbench.spec import config_id

    plain = load_spec(write(tmp_path, "dataset: sp500\n"))
    assert plain.train.loss == "mse"
    assert config_id(plain) == config_id(load_spec(write(tmp_path, "dataset: sp500\nloss: mse\n")))
    ids = {
        config_id(load_spec(write(tmp_path, f"dataset: sp500\nloss: {loss}\n")))
        for loss in ("mae", "mse+mae")
    }
    assert len(ids) == 2 and config_id(plain) not in ids


# ---- a model's own options in its own section ------------------------------------------------


def test_mambas_options_live_in_its_section_and_other_models_have_none(tmp_path):
    mamba = load_spec(write(tmp_path, "dataset: sp500\nmodel: {name: mamba, mamba: {state_size: 8}}\n"))
    assert mamba.model.mamba.state_size == 8 and mamba.model.options["expand"] == 2
    gru = load_spec(write(tmp_path, "dataset: sp500\nmodel: gru\n"))
    assert gru.model.mamba is None and gru.model.options == {}
    assert "mamba" not in dump_spec(gru) and "state_size" not in dump_spec(gru)
    assert "  mamba:\n    state_size: 8\n" in dump_spec(mamba)


@pytest.mark.parametrize(
    "how",
    [
        ("model: {name: mamba, state_size: 8}\n", []),  # flat, as spec.yaml files before sections
        ("model: mamba\nstate_size: 8\n", []),  # the short form
        ("model: mamba\n", ["model.state_size=8"]),
        ("model: mamba\n", ["model.mamba.state_size=8"]),
        ("model: mamba\n", ["state_size=8"]),
    ],
)
def test_every_way_to_set_an_option_lands_in_the_section(tmp_path, how):
    text, overrides = how
    spec = load_spec(write(tmp_path, "dataset: sp500\n" + text), overrides)
    assert spec.model.mamba.state_size == 8


def test_an_older_gru_spec_with_every_mamba_key_still_loads(tmp_path):
    old = "dataset: sp500\nmodel: {name: gru, state_size: 16, expand: 2, conv_kernel: 4, dt_rank: auto}\n"
    spec = load_spec(write(tmp_path, old))
    assert spec.model.name == "gru" and spec.model.mamba is None


def test_config_ids_are_those_of_the_flat_options_before_sections():
    """The ids seqbench gave these specs before option sections (computed at that commit), so that
    seed groups and sweeps keep recognising the runs they made."""
    from seqbench.spec import Spec, config_id

    mamba = {
        "dataset": {"name": "sp500"},
        "model": {"name": "mamba", "hidden_size": 32, "state_size": 8, "dt_rank": 2},
    }
    gru = {"dataset": {"name": "sp500"}, "model": {"name": "gru", "hidden_size": 32}}
    assert config_id(Spec.model_validate(mamba)) == "f9ee26cb60c1"
    assert config_id(Spec.model_validate(gru)) == "c76b2ff4a064"
    sectioned = {
        **mamba,
        "model": {"name": "mamba", "hidden_size": 32, "mamba": {"state_size": 8, "dt_rank": 2}},
    }
    assert config_id(Spec.model_validate(sectioned)) == "f9ee26cb60c1"


def test_an_unknown_option_in_the_section_is_named(tmp_path):
    with pytest.raises(SpecError, match=re.escape("model.mamba.state_sise")):
        load_spec(write(tmp_path, "dataset: sp500\nmodel: {name: mamba, mamba: {state_sise: 8}}\n"))


def test_changing_the_model_by_assignment_keeps_the_sections_right(tmp_path):
    spec = load_spec(write(tmp_path, "dataset: sp500\nmodel: {name: mamba, mamba: {state_size: 8}}\n"))
    spec.model.name = "gru"
    assert spec.model.mamba is None
    spec.model.name = "mamba"
    assert spec.model.mamba.state_size == 16  # the default: a GRU carries no Mamba options


def test_mamba_discretization_defaults_to_delta_b_and_zoh_is_its_own_config(tmp_path):
    from seqbench.spec import config_id

    spec = load_spec(write(tmp_path, "dataset: sp500\nmodel: mamba\n"))
    assert spec.model.mamba.discretization == "delta_b"
    zoh = load_spec(write(tmp_path, "dataset: sp500\nmodel: mamba\n"), ["model.discretization=zoh"])
    assert zoh.model.mamba.discretization == "zoh"
    assert config_id(zoh) != config_id(spec)
    with pytest.raises(SpecError, match="discretization"):
        load_spec(write(tmp_path, "dataset: sp500\nmodel: mamba\n"), ["model.mamba.discretization=euler"])


def test_mingru_variant_is_its_own_config_and_paper_keeps_the_old_id(tmp_path):
    from seqbench.spec import Spec, config_id

    mingru = {"dataset": {"name": "sp500"}, "model": {"name": "mingru", "hidden_size": 32}}
    paper = Spec.model_validate(mingru)
    assert paper.model.mingru.variant == "paper" and paper.model.mingru.expansion == 1
    assert config_id(paper) == "61fe4fcd5ccb"  # the id before minGRU had options (computed at b44768c)
    log_space = load_spec(write(tmp_path, "dataset: sp500\nmodel: mingru\n"), ["model.variant=log_space"])
    assert log_space.model.mingru.variant == "log_space"
    assert config_id(log_space) != config_id(load_spec(write(tmp_path, "dataset: sp500\nmodel: mingru\n")))
    with pytest.raises(SpecError, match="expansion"):
        load_spec(write(tmp_path, "dataset: sp500\nmodel: mingru\n"), ["model.mingru.expansion=2"])
