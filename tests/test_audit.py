"""The causality audit: every model on every backend passes, a leaky model is caught, splits are in order."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from seqbench.checks.audit import (
    TOLERANCE,
    audit_sequence,
    audit_spec,
    check_split_record,
    check_windows,
    model_backends,
    perturbation_times,
)
from seqbench.cli import app
from seqbench.models.numpy.mingru import MinGRU
from seqbench.models.registry import MODELS, build_model, model_names, torch_installed
from seqbench.spec import Spec
from seqbench.training.learners import build_learner

runner = CliRunner()


def spec_for(price_csv, model="mingru", backend="numpy", **dataset):
    return Spec.model_validate(
        {
            "name": "audit",
            "dataset": {
                "source": "csv",
                "path": str(price_csv),
                "features": ["Close", "Volume"],
                "target": "Close",
                "seq_len": 12,
                "transform": "log_return",
                "scaler": "standard",
                **dataset,
            },
            "model": {"name": model, "backend": backend, "hidden_size": 6, "n_layers": 2, "state_size": 3},
        }
    )


class LeakyMinGRU(MinGRU):
    """minGRU plus a reversed-time cumulative sum of its input: state t sees inputs t .. L-1."""

    def layer_forward(self, p, x):
        h, cache = super().layer_forward(p, x)
        future = np.cumsum(x[:, ::-1], axis=1)[:, ::-1].sum(axis=-1, keepdims=True)  # (B, L, 1)
        return h + 1e-3 * future, cache


def leaky_torch_class():
    from seqbench.models.torch.mingru import MinGRU as TorchMinGRU

    class LeakyTorchMinGRU(TorchMinGRU):
        def backbone(self, u, state=None):
            h, state = super().backbone(u, state)  # (B, L, D)
            return h + 1e-3 * u.flip(1).cumsum(1).flip(1).sum(-1, keepdim=True), state

    return LeakyTorchMinGRU


@pytest.fixture
def leaky_model(monkeypatch):
    """Register `leaky` (NumPy, and Torch when installed) in the model registry."""
    import sys

    entry = {"numpy": f"{__name__}:LeakyMinGRU"}
    if torch_installed():
        sys.modules[__name__].LeakyTorchMinGRU = leaky_torch_class()
        entry["torch"] = f"{__name__}:LeakyTorchMinGRU"
    monkeypatch.setitem(MODELS, "leaky", entry)
    return "leaky"


def test_perturbation_times():
    assert perturbation_times(20) == [0, 5, 10, 15, 18]
    assert perturbation_times(2) == [0]
    assert perturbation_times(1) == []


@pytest.mark.parametrize("model", model_names())
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_every_model_and_backend_is_causal(price_csv, model, backend):
    if backend == "torch":
        pytest.importorskip("torch")
    report = audit_spec(spec_for(price_csv, model, backend), backends=[backend])
    assert not report.leaks, report.leaks
    model_checks = [c for c in report.checks if c.part == "model"]
    # one check per perturbation time, and one that the forecast is the audited forward's last step
    assert len(model_checks) == len(perturbation_times(12)) + 1 and all(c.ok for c in model_checks)
    assert {c.subject for c in model_checks} == {f"{model} ({backend})"}
    # the perturbation does reach the later steps: the check is not vacuous
    assert all("no effect" not in c.result for c in model_checks)
    assert model_checks[-1].check == "the forecast is the audited forward's last step"


def test_the_audit_covers_every_installed_backend(price_csv):
    subjects = {c.subject for c in audit_spec(spec_for(price_csv, "gru")).checks if c.part == "model"}
    assert subjects == {f"gru ({b})" for b in model_backends("gru")}


def test_a_leaky_model_is_caught_on_every_backend(price_csv, leaky_model):
    report = audit_spec(spec_for(price_csv, leaky_model))
    leaks = report.leaks
    assert {c.subject for c in leaks} == {f"leaky ({b})" for b in model_backends("leaky")}
    assert all(c.part == "model" for c in leaks)
    # every perturbation time is caught, not just the first
    assert len(leaks) == len(perturbation_times(12)) * len(model_backends("leaky"))
    change = float(leaks[0].result.split(": ")[1].split(";")[0])
    assert change > TOLERANCE


class ForwardLeakyMinGRU(MinGRU):
    """A leak in the training forward only (its input), not in the layers: `sequence()` stays clean."""

    def forward(self, x, return_sequence=False):
        future = np.cumsum(x[:, ::-1], axis=1)[:, ::-1]  # (B, L, F)
        return super().forward(x + 1e-3 * future, return_sequence)


class ForecastLeakyMinGRU(MinGRU):
    """A leak only in the forecast that training fits (return_sequence=False): it adds the window's sum."""

    def forward(self, x, return_sequence=False):
        y, caches = super().forward(x, return_sequence)
        return (y, caches) if return_sequence else (y + 1e-3 * x.sum(axis=(1, 2))[:, None], caches)


def forward_leaky_torch_classes():
    from seqbench.models.torch.mingru import MinGRU as TorchMinGRU

    class ForwardLeakyTorchMinGRU(TorchMinGRU):
        def forward(self, x, return_sequence=False):
            return super().forward(x + 1e-3 * x.flip(1).cumsum(1).flip(1), return_sequence)

    class ForecastLeakyTorchMinGRU(TorchMinGRU):
        def forward(self, x, return_sequence=False):
            y = super().forward(x, return_sequence)
            return y if return_sequence else y + 1e-3 * x.sum(dim=(1, 2))[:, None]

    return ForwardLeakyTorchMinGRU, ForecastLeakyTorchMinGRU


@pytest.fixture
def forward_leaks(monkeypatch):
    """Register `forward-leak` and `forecast-leak` (NumPy, and Torch when installed)."""
    import sys

    module = sys.modules[__name__]
    forward = {"numpy": f"{__name__}:ForwardLeakyMinGRU"}
    forecast = {"numpy": f"{__name__}:ForecastLeakyMinGRU"}
    if torch_installed():
        module.ForwardLeakyTorchMinGRU, module.ForecastLeakyTorchMinGRU = forward_leaky_torch_classes()
        forward["torch"] = f"{__name__}:ForwardLeakyTorchMinGRU"
        forecast["torch"] = f"{__name__}:ForecastLeakyTorchMinGRU"
    monkeypatch.setitem(MODELS, "forward-leak", forward)
    monkeypatch.setitem(MODELS, "forecast-leak", forecast)


def test_a_leak_in_the_training_forward_is_caught_on_every_backend(price_csv, forward_leaks):
    """The leak is in forward (what train_step and predict run), not in the layers or `sequence()`."""
    spec = spec_for(price_csv, "forward-leak")
    backends = model_backends("forward-leak")
    report = audit_spec(spec)
    leaks = report.leaks
    assert {c.subject for c in leaks} == {f"forward-leak ({b})" for b in backends}
    assert len(leaks) == len(perturbation_times(12)) * len(backends)
    assert all(c.check.startswith("perturb inputs after step") for c in leaks)

    # an audit of `sequence()` alone, as before, would have passed this model
    x = np.random.default_rng(0).normal(size=(4, 12, 2))
    model = build_model(spec.model, 2, 1, spec.seed, np.float64, "numpy")
    checked = audit_sequence(model.sequence, x, perturbation_times(12))
    assert all(before <= TOLERANCE for _, before, _ in checked)
    # ... while what training fits and evaluation scores is the leaky forward
    learner = build_learner(spec, 2, 1)
    clean = MinGRU.forward(learner.model, x)[0]  # the same weights without the leak
    assert np.abs(learner.predict(x) - clean).max() > 1e-6


def test_a_leak_only_in_the_forecast_training_fits_is_caught(price_csv, forward_leaks):
    report = audit_spec(spec_for(price_csv, "forecast-leak"))
    backends = model_backends("forecast-leak")
    assert {(c.subject, c.check) for c in report.leaks} == {
        (f"forecast-leak ({b})", "the forecast is the audited forward's last step") for b in backends
    }


def test_cli_audit_passes_and_catches_a_leak(tmp_path, monkeypatch, price_csv, leaky_model):
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "spec.yaml"
    model = "{name: mamba, hidden_size: 4, state_size: 2}"
    spec.write_text(f"dataset: {price_csv}\nmodel: {model}\nseq_len: 8\n")
    result = runner.invoke(app, ["audit", "--config", str(spec)])
    assert result.exit_code == 0, result.output
    assert "LEAK" not in result.stdout and "perturb inputs after step 6 of 8" in result.stdout
    assert "train < val < test" in result.stdout

    result = runner.invoke(app, ["audit", "--config", str(spec), "--set", "model.name=leaky"])
    assert result.exit_code == 1, result.output
    assert "LEAK" in result.stdout
    assert result.stderr.startswith("error: causality audit: ") and "leaky (numpy)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (tmp_path / "results").exists()  # an audit writes nothing


def test_cli_audit_help_and_bad_spec(tmp_path):
    result = runner.invoke(app, ["audit", "--help"])
    assert result.exit_code == 0 and "Example:" in result.stdout
    result = runner.invoke(app, ["audit", "--config", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "spec file not found" in result.stderr


# --- the data pipeline ---------------------------------------------------------------------------


def test_metrics_json_records_the_splits_in_order(tmp_path, price_csv):
    """scaler rows within train, train < val < test by rows and dates, targets inside their split."""
    from seqbench.run.experiment import run_experiment

    spec = spec_for(price_csv, horizon=3)
    spec.train.epochs = 1
    result = run_experiment(spec, tmp_path / "results")
    splits = json.loads((result.run_dir / "metrics.json").read_text())["splits"]
    scaler, train, val, test = (splits[k] for k in ("scaler_fit", "train", "val", "test"))
    assert train["rows"][0] <= scaler["rows"][0] < scaler["rows"][1] <= train["rows"][1]
    assert train["rows"][1] <= val["rows"][0] and val["rows"][1] <= test["rows"][0]
    assert train["last_date"] < val["first_date"] and val["last_date"] < test["first_date"]
    assert scaler["last_date"] <= train["last_date"]
    for split in (train, val, test):
        assert split["rows"][0] <= split["target_rows"][0] < split["target_rows"][1] <= split["rows"][1]
        assert split["windows"] == split["target_rows"][1] - split["target_rows"][0] - 3 + 1
    assert test["target_rows"][1] == 400  # the last row of the file is the last test target
    assert all(check.ok for check in check_split_record(splits))


def test_a_split_record_out_of_order_is_a_leak():
    def span(rows, first, last, targets=None):
        record = {"rows": rows, "first_date": first, "last_date": last}
        return record if targets is None else {**record, "target_rows": targets}

    good = {
        "scaler_fit": span([1, 70], "2020-01-02", "2020-03-10"),
        "train": span([0, 70], "2020-01-01", "2020-03-10", [9, 70]),
        "val": span([70, 85], "2020-03-11", "2020-03-25", [70, 85]),
        "test": span([85, 100], "2020-03-26", "2020-04-09", [85, 100]),
    }
    assert all(c.ok for c in check_split_record(good))
    scaler_sees_val = {**good, "scaler_fit": {**good["scaler_fit"], "rows": [1, 80]}}
    assert [c.check for c in check_split_record(scaler_sees_val) if not c.ok] == [
        "scaler fit on training rows only"
    ]
    overlap = {**good, "val": {**good["val"], "rows": [60, 85]}}
    assert "train < val < test (rows)" in [c.check for c in check_split_record(overlap) if not c.ok]
    targets_outside = {**good, "test": {**good["test"], "target_rows": [80, 100]}}
    assert [c.check for c in check_split_record(targets_outside) if not c.ok] == [
        "each split's targets within its rows"
    ]
    assert not check_split_record({"train": {}})[0].ok


def test_windows_whose_targets_cross_a_split_are_caught(price_csv):
    from seqbench.data.sources import load_frame
    from seqbench.data.windows import make_windows

    spec = spec_for(price_csv, horizon=2)
    loaded = load_frame(spec.dataset)
    windows = make_windows(loaded.frame, loaded.features, loaded.targets, spec.dataset)
    assert all(c.ok for c in check_windows(windows))
    windows.val.origin = windows.val.origin - 5  # val targets now reach back into train
    failed = [c.check for c in check_windows(windows) if not c.ok]
    assert failed == ["no target row in two splits", "inputs and targets inside their split's past"]
