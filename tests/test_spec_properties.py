"""Property tests for spec parsing and `--set` overrides.

Valid values survive YAML, the short form, overrides and the saved spec unchanged; any text
at all, as a spec file or as `--set` items, gives a Spec or a one-line SpecError, never
another exception.
"""

import json
import string

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqbench.errors import SpecError
from seqbench.spec import dump_spec, load_spec

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
NAME_CHARS = string.ascii_letters + string.digits + "._-"

names = st.text(NAME_CHARS, min_size=1, max_size=64).filter(lambda s: s[0].isalnum() and ".." not in s)
positive = st.floats(1e-8, 10.0, allow_nan=False, allow_infinity=False)

# canonical key -> values the spec accepts for it
VALID = {
    "name": names,
    "seed": st.integers(0, 2**31),
    "dataset.seq_len": st.integers(1, 500),
    "dataset.horizon": st.integers(1, 50),
    "dataset.scaler": st.sampled_from(["minmax", "standard", "none"]),
    "dataset.transform": st.sampled_from(["none", "diff", "log_return"]),
    "dataset.fill": st.sampled_from(["none", "ffill", "drop"]),
    "model.name": st.sampled_from(["mingru", "gru", "mamba"]),
    "model.hidden_size": st.integers(1, 1024),
    "model.n_layers": st.integers(1, 8),
    "train.epochs": st.integers(1, 1000),
    "train.batch_size": st.integers(1, 4096),
    "train.optimizer": st.sampled_from(["sgd", "adam", "adamw"]),
    "train.lr": positive,
    "train.weight_decay": st.floats(0, 1),
    "train.grad_clip": st.one_of(st.none(), st.floats(0, 100)),
    "train.patience": st.integers(0, 100),
    "train.min_delta": st.floats(0, 1),
    "train.shuffle": st.booleans(),
}
SHORT = {
    "seq_len",
    "horizon",
    "hidden_size",
    "n_layers",
    "epochs",
    "lr",
    "optimizer",
    "patience",
    "batch_size",
}


def get(spec, key):
    value = spec
    for part in key.split("."):
        value = getattr(value, part)
    return value


def nest(flat):
    out = {"dataset": {"source": "builtin", "name": "sp500"}}
    for key, value in flat.items():
        section, _, leaf = key.rpartition(".")
        (out.setdefault(section, {}) if section else out)[leaf] = value
    return out


@st.composite
def assignments(draw):
    keys = draw(st.lists(st.sampled_from(sorted(VALID)), unique=True, max_size=8))
    return {key: draw(VALID[key]) for key in keys}


def yaml_scalar(value):
    """How a user would type the value after `--set key=`."""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # quoted: '1e3' stays a string, as in YAML
    return yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n").strip()


@given(assignments())
@SETTINGS
def test_valid_values_survive_yaml_and_the_saved_spec(tmp_path, flat):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(nest(flat)))
    spec = load_spec(path, data_dir=tmp_path)
    for key, value in flat.items():
        assert get(spec, key) == value, key
    saved = tmp_path / "saved.yaml"
    saved.write_text(dump_spec(spec))
    assert load_spec(saved, data_dir=tmp_path) == spec


@given(assignments(), st.data())
@SETTINGS
def test_set_overrides_win_whether_keys_are_canonical_or_short(tmp_path, flat, data):
    path = tmp_path / "spec.yaml"
    path.write_text("dataset: sp500\nmodel: gru\nlr: 0.5\nepochs: 3\n")
    items = []
    for key, value in flat.items():
        leaf = key.rpartition(".")[2]
        use_short = leaf in SHORT and data.draw(st.booleans())
        items.append(f"{leaf if use_short else key}={yaml_scalar(value)}")
    spec = load_spec(path, items, data_dir=tmp_path)
    for key, value in flat.items():
        assert get(spec, key) == pytest.approx(value) if isinstance(value, float) else get(spec, key) == value
    untouched = {"train.lr": 0.5, "train.epochs": 3, "model.name": "gru"}
    for key, value in untouched.items():
        if key not in flat:
            assert get(spec, key) == value


@given(st.sampled_from(sorted(VALID)), st.data())
@SETTINGS
def test_the_last_override_of_a_key_wins(tmp_path, key, data):
    path = tmp_path / "spec.yaml"
    path.write_text("dataset: sp500\n")
    first, last = (f"{key}={yaml_scalar(data.draw(VALID[key]))}" for _ in range(2))
    assert load_spec(path, [first, last], data_dir=tmp_path) == load_spec(path, [last], data_dir=tmp_path)


KEYS = st.sampled_from(["name", "seed", "dataset", "model", "train", "lr", "epochs", "x", "seq_len", "split"])
LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=10), st.dates()
)
yaml_values = st.recursive(
    LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(KEYS | st.text(max_size=5), inner, max_size=4)
    ),
)


@given(st.dictionaries(KEYS, yaml_values, max_size=6))
@SETTINGS
def test_any_mapping_is_a_spec_or_one_line_error(tmp_path, raw):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    try:
        load_spec(path, data_dir=tmp_path)
    except SpecError as exc:
        assert "\n" not in str(exc) and str(exc)


@given(st.text(max_size=200))
@SETTINGS
def test_any_text_is_a_spec_or_one_line_error(tmp_path, text):
    path = tmp_path / "spec.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_spec(path, data_dir=tmp_path)
    except SpecError as exc:
        assert "\n" not in str(exc) and str(exc)


@given(st.lists(st.text(max_size=30), max_size=4))
@SETTINGS
def test_any_set_items_give_a_spec_or_one_line_error(tmp_path, items):
    path = tmp_path / "spec.yaml"
    path.write_text("dataset: sp500\n")
    try:
        load_spec(path, items, data_dir=tmp_path)
    except SpecError as exc:
        assert "\n" not in str(exc) and str(exc)
