"""The language-model task end to end, through the CLI: every model trains on a text, the run
folder holds the LM metrics, baselines and samples.txt, compare leads with bits per byte,
`sample` generates, a stopped LM run resumes to the same numbers, and bad input is one line."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from cli_helpers import files_of, invoke, make_text
from cli_helpers import one_line_error as shared_one_line_error

from seqbench.models.registry import model_names, torch_installed
from seqbench.run.experiment import resume_experiment, run_experiment
from seqbench.spec import Spec

BACKENDS = ["numpy", "torch"] if torch_installed() else ["numpy"]


@pytest.fixture
def workdir(workdir):
    (workdir / "plays.txt").write_bytes(make_text())
    return workdir


def spec_for(model: str, backend: str = "numpy", **train) -> Spec:
    return Spec.model_validate(
        {
            "name": f"lm-{model}-{backend}",
            "dataset": {"source": "text", "path": "plays.txt", "seq_len": 16},
            "model": {"name": model, "backend": backend, "hidden_size": 16, "state_size": 4, "dt_rank": 2},
            "train": {"epochs": 3, "batches_per_epoch": 30, "batch_size": 16, "optimizer": "adamw",
                      "lr": 0.01, **train},
        }
    )  # fmt: skip


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("model", model_names())
def test_every_model_learns_the_text_and_writes_an_lm_run_folder(workdir, model, backend):
    result = run_experiment(spec_for(model, backend), workdir / "results")
    assert result.status == "completed", result.message
    m = json.loads((result.run_dir / "metrics.json").read_text())
    assert (m["task"], m["headline"]) == ("lm", {"metric": "bits_per_byte", "split": "test"})
    test = m["test"]
    assert test["bytes"] == m["data"]["parts"]["test"][1] - m["data"]["parts"]["test"][0] > 0
    assert math.isclose(test["bits_per_byte"], test["nats"] / math.log(2))
    assert math.isclose(test["perplexity"], math.exp(test["nats"]))
    assert set(m["baselines"]) == {"unigram", "ngram", "zlib", "lzma"}
    # it learned: well below the bytes' own frequencies (the unigram) on the held-out text
    assert test["bits_per_byte"] < m["baselines"]["unigram"]["bits_per_byte"] - 0.5
    samples = (result.run_dir / "samples.txt").read_bytes()
    prompt = m["samples"]["prompt_bytes"]
    assert len(samples) == prompt + m["samples"]["length"]
    start = m["data"]["parts"]["test"][0]
    assert samples[:prompt] == make_text()[start : start + prompt]
    assert (result.run_dir / "loss_curve.png").is_file()
    assert not (result.run_dir / "predictions.csv").exists()


def test_cli_train_compare_and_sample(workdir):
    trained = invoke("train", "--config", write_spec(workdir), "-q")
    assert trained.exit_code == 0, trained.output
    assert "bits/byte" in trained.stdout and "-gram" in trained.stdout
    run_dir = next((workdir / "results" / "plays").iterdir())
    compared = invoke("compare", "--format", "csv")
    assert compared.exit_code == 0, compared.output
    header = compared.stdout.splitlines()[0].split(",")
    assert header[header.index("bits_per_byte") - 1] == "s/epoch" and "rmse" not in header
    as_json = json.loads(invoke("compare", "--json").stdout)
    assert as_json[0]["bits_per_byte"] > 0
    sampled = invoke("sample", run_dir, "--prompt", "The king", "--length", "50", "--seed", "3")
    assert sampled.exit_code == 0, sampled.output
    assert sampled.stdout_bytes.startswith(b"The king") and len(sampled.stdout_bytes) == len(b"The king") + 51
    again = invoke("sample", run_dir, "--prompt", "The king", "--length", "50", "--seed", "3")
    assert again.stdout_bytes == sampled.stdout_bytes  # seeded
    greedy = invoke("sample", run_dir, "--prompt", "The king", "--length", "20", "--temperature", "0")
    assert greedy.exit_code == 0


def write_spec(workdir, extra: str = "") -> str:
    path = workdir / "plays.yaml"
    path.write_text(
        "dataset: plays.txt\nseq_len: 16\nhidden_size: 16\nepochs: 2\nbatches_per_epoch: 20\nbatch_size: 16\n"
        f"lr: 0.01\n{extra}"
    )
    return str(path)


def test_mixed_tasks_compare_as_two_tables(workdir):
    assert invoke("train", "--config", write_spec(workdir), "-q").exit_code == 0
    (workdir / "f.yaml").write_text(
        "model: gru\ndataset: seattle-weather\nhidden_size: 4\nseq_len: 5\nepochs: 1\n"
    )
    assert invoke("train", "--config", workdir / "f.yaml", "-q").exit_code == 0
    table = invoke("compare", "--format", "md")
    assert table.exit_code == 0, table.output
    assert "### forecast runs" in table.stdout and "### lm runs" in table.stdout
    csv = invoke("compare", "--format", "csv")
    assert csv.exit_code == 2 and "these runs are of 2 tasks (forecast, lm)" in csv.stderr
    both = json.loads(invoke("compare", "--json").stdout)
    assert {("rmse" in r, "bits_per_byte" in r) for r in both} == {(True, False), (False, True)}


def test_a_split_without_test_scores_on_val(workdir):
    spec = spec_for("mingru")
    spec.dataset.split = (0.9, 0.1, 0.0)  # nanoGPT's split
    m = run_experiment(spec, workdir / "results").metrics
    assert m["test"] is None and m["headline"]["split"] == "val" and m["val"]["bits_per_byte"] > 0


def test_an_lm_run_stopped_in_epoch_2_resumes_to_the_same_numbers(workdir):
    from seqbench.models.numpy.learner import NumpyLearner

    straight = run_experiment(spec_for("mingru", dtype="float64"), workdir / "a")
    original, steps = NumpyLearner.train_step, []

    def train_step(self, x, y):
        steps.append(1)
        if len(steps) == 31:  # the first batch of epoch 2
            import os
            import signal

            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, x, y)

    with pytest.MonkeyPatch.context() as patch:  # (monkeypatch.undo would also undo the chdir)
        patch.setattr(NumpyLearner, "train_step", train_step)
        stopped = run_experiment(spec_for("mingru", dtype="float64"), workdir / "b")
    assert stopped.status == "interrupted" and stopped.metrics["epochs_run"] == 1
    resumed = resume_experiment(stopped.run_dir)
    assert resumed.status == "completed"
    for part in ("val", "test"):
        assert math.isclose(resumed.metrics[part]["nats"], straight.metrics[part]["nats"], rel_tol=1e-12)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "dataset.path=missing.txt"], "text file not found: missing.txt"),
        (["--set", "dataset.seq_len=100000"], "the train part has"),
        (["--set", "task=forecast"], "a text dataset is for task: lm"),
    ],
)
def test_bad_lm_input_is_one_line_exit_2(workdir, args, message):
    result = invoke("train", "--config", write_spec(workdir), *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert not (workdir / "results").exists()


def test_sample_refuses_a_forecast_run_and_an_empty_prompt(workdir):
    (workdir / "f.yaml").write_text(
        "model: gru\ndataset: seattle-weather\nhidden_size: 4\nseq_len: 5\nepochs: 1\n"
    )
    assert invoke("train", "--config", workdir / "f.yaml", "-q").exit_code == 0
    forecast_run = next((workdir / "results" / "f").iterdir())
    result = invoke("sample", forecast_run)
    assert result.exit_code == 2 and "needs a language model (task: lm)" in result.stderr
    assert invoke("train", "--config", write_spec(workdir), "-q").exit_code == 0
    lm_run = next((workdir / "results" / "plays").iterdir())
    empty = invoke("sample", lm_run, "--prompt", "")
    assert empty.exit_code == 2 and "the prompt is empty" in empty.stderr


@pytest.mark.skipif(not torch_installed(), reason="needs torch")
@pytest.mark.parametrize("model", model_names())
def test_a_float64_lm_run_gives_the_same_numbers_on_either_backend(workdir, model):
    runs = {
        b: run_experiment(spec_for(model, b, dtype="float64", epochs=2), workdir / b)
        for b in ("numpy", "torch")
    }
    a, b = runs["numpy"].metrics, runs["torch"].metrics
    for part in ("val", "test"):
        assert math.isclose(a[part]["nats"], b[part]["nats"], rel_tol=1e-9), (part, a[part], b[part])
    history = [(r.run_dir / "history.csv").read_text().splitlines()[1:] for r in runs.values()]
    for ours, theirs in zip(*history, strict=True):
        x, y = ours.split(","), theirs.split(",")
        assert all(
            math.isclose(float(p), float(q), rel_tol=1e-9) for p, q in zip(x[1:4], y[1:4], strict=True)
        )
    assert a["baselines"] == b["baselines"]
    assert (runs["numpy"].run_dir / "samples.txt").read_bytes() == (
        runs["torch"].run_dir / "samples.txt"
    ).read_bytes()


def test_gradcheck_lm_checks_the_embedding_and_cross_entropy():
    result = invoke("gradcheck", "--model", "gru", "--lm")
    assert result.exit_code == 0, result.output
    assert "gru (lm)" in result.stdout and "embed.weight" in result.stdout


def test_the_result_table_leaves_what_a_compressor_has_not_blank(workdir):
    result = invoke("train", "--config", write_spec(workdir), "-q")
    lines = [line for line in result.stdout.splitlines() if line.startswith(("│ zlib", "│ lzma"))]
    assert len(lines) == 2 and not any("nan" in line for line in lines)


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    """A tiny trained LM run folder (1 epoch of 3 batches)."""
    root = tmp_path_factory.mktemp("lm_run")
    (root / "plays.txt").write_bytes(make_text(6_000))
    (root / "lm.yaml").write_text(
        f"name: lm\ndataset: {{source: text, path: {root / 'plays.txt'}, seq_len: 16}}\n"
        "model: {name: gru, hidden_size: 8}\ntrain: {epochs: 1, batches_per_epoch: 3, batch_size: 8}\n"
    )
    result = invoke("train", "-q", "-c", root / "lm.yaml", "--results", root / "results")
    assert result.exit_code == 0, result.output
    (run_dir,) = (root / "results" / "lm").iterdir()
    return run_dir


def one_line_error(result, message):
    shared_one_line_error(result, message)
    assert result.stdout == ""


TEMPERATURE = "--temperature must be 0 (always the likeliest byte) or a finite number >= 0.001, got"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--temperature", "nan"], f"{TEMPERATURE} nan"),
        (["--temperature", "inf"], f"{TEMPERATURE} inf"),
        (["--temperature", "1e-320"], f"{TEMPERATURE} 1e-320"),
        (["--temperature", "-0.5"], f"{TEMPERATURE} -0.5"),
        (["--top-k", "0"], "--top-k must be between 1 and 256 (256: every byte), got 0"),
        (["--top-k", "257"], "--top-k must be between 1 and 256 (256: every byte), got 257"),
        (["--length", "0"], "--length must be between 1 and 1,000,000 bytes, got 0"),
        (["--length", "1000001"], "--length must be between 1 and 1,000,000 bytes, got 1000001"),
    ],
)
def test_bad_sample_settings_are_one_line_exit_2(lm_run, args, message):
    before = files_of(lm_run)
    one_line_error(invoke("sample", lm_run, "--length", "5", *args), message)
    assert files_of(lm_run) == before


def test_a_prompt_that_is_not_utf8_is_read_as_its_bytes(lm_run):
    # `$(printf 'caf\xe9')` on a command line reaches Python as 'caf\udce9' (surrogateescape)
    result = invoke("sample", lm_run, "--prompt", "caf\udce9", "--length", "5", "--temperature", "0")
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes.startswith(b"caf\xe9") and len(result.stdout_bytes) == 4 + 5 + 1


def test_sample_help_shows_its_real_defaults():
    help_text = " ".join(invoke("sample", "--help").stdout.split())
    assert "[default: ]" not in help_text and "[default: (a newline)]" in help_text
    assert "(default: all)" not in help_text and "1 to 256 (256: every byte). [default: 40]" in help_text


def test_weights_with_nan_are_refused_in_one_line(lm_run, tmp_path):
    import shutil

    run_dir = tmp_path / "lm" / lm_run.name
    shutil.copytree(lm_run, run_dir)
    with np.load(run_dir / "model.npz") as saved:
        weights = {k: saved[k] for k in saved.files}
    weights["head.weight"][0, 0] = np.nan
    np.savez(run_dir / "model.npz", **weights)
    before = files_of(run_dir)
    one_line_error(
        invoke("sample", run_dir, "--length", "5"),
        f"{run_dir / 'model.npz'}: weight 'head.weight' holds NaN or inf values",
    )
    assert files_of(run_dir) == before


def test_scores_that_are_not_finite_stop_generation_with_one_message():
    from seqbench.errors import SeqbenchError
    from seqbench.tasks.lm import generate

    class Overflowing:  # finite weights whose scores overflow (float32 of 1e39): NaN logits at byte 2
        def initial_state(self, batch):
            return 0

        def forward_state(self, ids, state):
            return None, state

        def step(self, last, state):
            return np.full((1, 256), np.nan if state else 0.0), state + 1

        def step_function(self):
            return self.step

        def decoder(self):
            return self

    with pytest.raises(SeqbenchError, match="not finite \\(NaN or inf\\) at generated byte 2"):
        generate(Overflowing(), b"ab", 5, 0.8, 40)
