"""`seqbench convert`: a run's weights out in a peer's layout and back in as a scored run folder."""

import json

import numpy as np
import pytest
from cli_helpers import invoke

torch = pytest.importorskip("torch")
mambapy = pytest.importorskip("mambapy.mamba")


def spec_file(workdir, price_csv, model):
    name = model.split(",")[0].removeprefix("name: ")
    path = workdir / f"{name}.yaml"
    path.write_text(
        f"dataset: {{source: csv, path: {price_csv}, target: Close, seq_len: 8, transform: log_return}}\n"
        f"model: {{{model}}}\ntrain: {{epochs: 1, dtype: float64}}\nname: {name}\n"
    )
    return path


def trained(spec, *args):
    result = invoke("train", "--config", spec, "--quiet", "--json", *args)
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    return metrics, next((spec.parent / "results").glob(f"{metrics['name']}/*"))


def one_line_failure(result, message):
    assert result.exit_code == 2, result.output
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1


MODELS = [
    ("name: mamba, hidden_size: 4, mamba: {state_size: 2, expand: 2, conv_kernel: 2}", "numpy", "mambapy"),
    ("name: mingru, hidden_size: 4, mingru: {variant: log_space, expansion: 1.5}", "torch", "mingru_pytorch"),
]


@pytest.mark.parametrize(("model", "backend", "peer"), MODELS)
def test_export_then_import_gives_the_same_scores(workdir, price_csv, model, backend, peer):
    spec = spec_file(workdir, price_csv, model)
    metrics, run_dir = trained(spec, "--backend", backend)
    result = invoke("convert", run_dir, "--to", peer, "-o", workdir / "w.pt")
    assert result.exit_code == 0, result.output
    assert (workdir / "w.pt").is_file() and "wrote" in result.stderr
    into = "numpy" if backend == "torch" else "torch"  # trained on one backend, scored on the other
    result = invoke(
        "convert",
        workdir / "w.pt",
        "--config",
        spec,
        "--set",
        f"model.backend={into}",
        "--name",
        "back",
        "--json",
    )
    assert result.exit_code == 0, result.output
    back = json.loads(result.stdout)
    assert back["status"] == "completed" and back["epochs_run"] == 0
    assert back["converted_from"]["peer"] == peer and back["converted_from"]["file"].endswith("w.pt")
    for key in ("rmse", "mae", "r2"):
        assert back["test"][key] == pytest.approx(metrics["test"][key], rel=1e-9)
    folder = next((workdir / "results" / "back").iterdir())
    weights = "model.pt" if into == "torch" else "model.npz"
    assert {"spec.yaml", "metrics.json", weights, "predictions.csv", "run.log"} <= {
        p.name for p in folder.iterdir()
    }
    assert "weights converted from" in (folder / "run.log").read_text()
    result = invoke("compare", workdir / "results", "--no-group", "--format", "csv")  # read like any run
    assert result.exit_code == 0, result.output
    assert "back" in result.stdout


def test_blocks_only_loads_into_mambapy_and_npz_without_torch_names(workdir, price_csv):
    spec = spec_file(workdir, price_csv, MODELS[0][0])
    _, run_dir = trained(spec)
    assert invoke("convert", run_dir, "--to", "mambapy", "-o", "b.pt", "--blocks-only").exit_code == 0
    state = torch.load(workdir / "b.pt", weights_only=True)
    norm_f = state.pop("norm_f.weight")
    assert norm_f.shape == (4,)
    config = mambapy.MambaConfig(d_model=4, n_layers=1, d_state=2, expand_factor=2, d_conv=2)
    mambapy.Mamba(config).double().load_state_dict(state)  # strict: exactly mambapy's names and shapes
    assert invoke("convert", run_dir, "--to", "mamba_ssm", "-o", "s.npz").exit_code == 0
    with np.load(workdir / "s.npz") as saved:
        assert "backbone.layers.0.mixer.A_log" in saved.files and "head.weight" in saved.files


def test_a_missing_parameter_is_named_and_writes_no_run(workdir, price_csv):
    spec = spec_file(workdir, price_csv, MODELS[0][0])
    _, run_dir = trained(spec)
    invoke("convert", run_dir, "--to", "mambapy", "-o", "w.pt")
    state = torch.load(workdir / "w.pt", weights_only=True)
    del state["layers.0.mixer.dt_proj.bias"]
    torch.save(state, workdir / "w.pt")
    result = invoke("convert", "w.pt", "--config", spec, "--name", "broken")
    one_line_failure(result, "layers.0.mixer.dt_proj.bias")
    assert not (workdir / "results" / "broken").exists()
    del state["head.weight"]  # seqbench's own weights may be absent: a warning, then a run
    state["layers.0.mixer.dt_proj.bias"] = torch.zeros(8, dtype=torch.float64)
    torch.save(state, workdir / "w.pt")
    result = invoke("convert", "w.pt", "--config", spec, "--name", "headless", "--quiet")
    assert result.exit_code == 0, result.output
    assert "warning:" in result.stderr and "head.weight" in result.stderr


def test_bad_files_and_flags_are_one_line_exit_2(workdir, price_csv):
    spec = spec_file(workdir, price_csv, "name: mingru, hidden_size: 4")
    (workdir / "junk.pt").write_bytes(b"not a state dict")
    one_line_failure(invoke("convert", "junk.pt", "--config", spec), "not a state dict of tensors")
    torch.save({"model": {"w": torch.zeros(2)}}, workdir / "wrapped.pt")
    one_line_failure(invoke("convert", "wrapped.pt", "--config", spec), "'model' is a dict, not a tensor")
    torch.save({"to_hidden_and_gate.weight": torch.zeros(8, 1)}, workdir / "layer.pt")
    one_line_failure(invoke("convert", "layer.pt", "--config", spec), "variant: log_space")
    one_line_failure(invoke("convert", "absent.pt", "--config", spec), "absent.pt: no such file")
    one_line_failure(invoke("convert", "layer.pt"), "not neither")
    one_line_failure(invoke("convert", "layer.pt", "--config", spec, "--to", "mambapy"), "not both")
    one_line_failure(invoke("convert", workdir, "--to", "mambapy"), "--to needs --output")
    one_line_failure(invoke("convert", workdir, "--to", "mambapy", "-o", "x.pt"), "not a run folder")
    gru = spec_file(workdir, price_csv, "name: gru, hidden_size: 4")
    one_line_failure(invoke("convert", "layer.pt", "--config", gru), "no peer layout")
    one_line_failure(
        invoke("convert", "layer.pt", "--config", spec, "--name", "../out"), "not a valid run name"
    )
    assert not (workdir / "results").exists()
    _, run_dir = trained(spec)
    one_line_failure(invoke("convert", run_dir, "--to", "mambapy", "-o", "x.pt"), "is a mingru run")
    one_line_failure(invoke("convert", run_dir, "--to", "nope", "-o", "x.pt"), "unknown peer 'nope'")
    one_line_failure(invoke("convert", run_dir, "--to", "mingru_pytorch", "-o", "x.txt"), "variant")


def test_help_has_an_example():
    result = invoke("convert", "--help")
    assert result.exit_code == 0 and "Example:" in result.stdout and "mingru_pytorch" in result.stdout
