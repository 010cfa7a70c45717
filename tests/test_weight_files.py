"""Weight files from anyone (issue 24): `convert`, `predict`, `sample` and `train --resume` read
.npz and .pt files tensor by tensor, each header checked before its data, and refuse what does not
fit in one `error:` line (exit 2), changing nothing on disk. The crafted files are small: a header
that claims 10^11 floats, or a deflated member that claims 1 GB, never costs what it claims."""

import json
import shutil
import struct
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest
from cli_helpers import files_of, invoke, one_line_error
from numpy.lib import format as npy

torch = pytest.importorskip("torch")


DATA = "dataset: {source: synthetic, name: sine, length: 300, seq_len: 8}\n"
MAMBA = "model: {name: mamba, hidden_size: 4, mamba: {state_size: 2, expand: 2, conv_kernel: 2}}\n"
GRU_TORCH = "model: {name: gru, hidden_size: 4, backend: torch}\n"
LM_TORCH = (
    "dataset: {{source: text, path: {text}, seq_len: 16}}\n"
    "model: {{name: gru, hidden_size: 8, backend: torch}}\n"
    "train: {{epochs: 1, batches_per_epoch: 3, batch_size: 8}}\n"
)
A_LOG = "layers.0.mixer.A_log"  # (ED, N) = (8, 2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Three completed runs to copy (a NumPy Mamba, a Torch GRU, a Torch GRU LM), the Mamba's spec,
    and its weights exported in mambapy's layout as good.npz."""
    root = tmp_path_factory.mktemp("trained")
    (root / "plays.txt").write_text("The king shall speak now, my lord.\n" * 200)
    specs = {
        "mamba": DATA + MAMBA + "train: {epochs: 1}\n",
        "torch": DATA + GRU_TORCH + "train: {epochs: 1}\n",
        "lm": LM_TORCH.format(text=root / "plays.txt"),
    }
    runs = {}
    for name, text in specs.items():
        (root / f"{name}.yaml").write_text(f"name: {name}\n{text}")
        result = invoke("train", "-q", "-c", root / f"{name}.yaml", "--results", root / "results")
        assert result.exit_code == 0, result.output
        (runs[name],) = (root / "results" / name).iterdir()
    result = invoke("convert", runs["mamba"], "--to", "mambapy", "-o", root / "good.npz")
    assert result.exit_code == 0, result.output
    return {**runs, "spec": root / "mamba.yaml", "good": root / "good.npz"}


def good_arrays(trained):
    with np.load(trained["good"]) as saved:
        return {k: saved[k] for k in saved.files}


def import_refused(trained, workdir, weights, message):
    """`convert WEIGHTS --config SPEC`: one line holding `message`, exit 2, nothing written."""
    before = files_of(workdir)
    one_line_error(invoke("convert", weights, "--config", trained["spec"]), message)
    assert files_of(workdir) == before and not (workdir / "results").exists()


# ---- crafted .npz files: written member by member, headers and all -----------------------------------


def npy_header(shape, dtype="<f8"):
    """The bytes of an .npy header (format 1.0) that claims `shape` of `dtype`."""
    from io import BytesIO

    buffer = BytesIO()
    npy.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def deflated_zeros(header, n_mib):
    """A deflate stream of `header` then `n_mib` MiB of zeros, about 1 KB per MiB, made fast: each
    MiB is one segment after a full flush, so the same bytes repeat."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = compressor.compress(header) + compressor.flush(zlib.Z_FULL_FLUSH)
    segment = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    return head + segment * n_mib + compressor.flush()


def write_zip(path, members):
    """A zip of `members`: name -> bytes (stored), or name -> (deflated bytes, size they claim)."""
    local, central = b"", b""
    for name, member in members.items():
        data, size, method = (*member, 8) if isinstance(member, tuple) else (member, len(member), 0)
        crc = zlib.crc32(member) if method == 0 else 0  # a deflated member is never read: no CRC
        fields = struct.pack("<HHHHIIIHH", 0, method, 0, 33, crc, len(data), size, len(name), 0)
        central += struct.pack("<IHH", 0x02014B50, 20, 20) + fields[:-2]
        central += struct.pack("<HHHHII", 0, 0, 0, 0, 0, len(local)) + name.encode()
        local += struct.pack("<IH", 0x04034B50, 20) + fields + name.encode() + data
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central), len(local), 0)
    path.write_bytes(local + central + end)


def npz_members(arrays):
    """Each array as the bytes of its .npy member, by member name."""
    from io import BytesIO

    members = {}
    for name, array in arrays.items():
        buffer = BytesIO()
        np.save(buffer, array)
        members[f"{name}.npy"] = buffer.getvalue()
    return members


def test_the_crafted_zip_is_a_real_npz(tmp_path):
    """The writer above makes files NumPy reads: the refusals below are seqbench's, not a bad zip's."""
    header = npy_header((2**18,))
    zeros = (deflated_zeros(header, 2), len(header) + 2**21)
    write_zip(tmp_path / "w.npz", {**npz_members({"a": np.arange(3.0)}), "z.npy": zeros})
    with np.load(tmp_path / "w.npz") as saved:
        assert saved["a"].tolist() == [0, 1, 2]
    with zipfile.ZipFile(tmp_path / "w.npz") as archive, archive.open("z.npy") as stream:
        assert len(stream.read(1 << 16)) == 1 << 16


# ---- row 1: a header that claims 10^11 floats ---------------------------------------------------------


@pytest.mark.parametrize("deflated", [False, True])
def test_a_header_claiming_1e11_floats_is_refused_before_its_data(trained, workdir, deflated):
    members = npz_members(good_arrays(trained))
    header = npy_header((10**11,))
    data = header + bytes(7000)  # the zip's own sizes say 7 KB; the .npy header, 745 GiB
    members[f"{A_LOG}.npy"] = (deflated_zeros(data, 0), len(data)) if deflated else data
    write_zip(workdir / "claims.npz", members)
    message = f"claims.npz: '{A_LOG}' claims shape (100000000000,) of float64 (800000000000 bytes)"
    import_refused(trained, workdir, "claims.npz", message)


def test_a_header_with_another_shape_than_the_model_is_refused_before_its_data(trained, workdir):
    arrays = good_arrays(trained)
    arrays[A_LOG] = np.zeros((300, 300))
    np.savez_compressed(workdir / "shape.npz", **arrays)
    import_refused(trained, workdir, "shape.npz", f"'{A_LOG}' has shape (300, 300); this model needs (8, 2)")


# ---- row 2: a member the model never uses ----------------------------------------------------------


def test_a_1_gb_member_the_model_does_not_use_is_named_and_never_read(trained, workdir):
    members = npz_members(good_arrays(trained))
    header = npy_header((2**27,))  # 1 GiB of float64, in about 1 MB of file
    members["extra.weight.npy"] = (deflated_zeros(header, 1024), 2**30 + len(header))
    write_zip(workdir / "extra.npz", members)
    assert (workdir / "extra.npz").stat().st_size < 2 * 2**20
    tracemalloc.start()
    try:
        import_refused(trained, workdir, "extra.npz", "extra.npz has 1 tensor(s) this")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200 * 2**20, f"{peak / 2**20:.0f} MiB traced"
    result = invoke("convert", "extra.npz", "--config", trained["spec"])
    assert "does not use: extra.weight; it uses " in result.stderr and A_LOG in result.stderr


# ---- row 3: bf16 converts; sparse, meta, tuple keys and strings are refused ---------------------------


def torch_state(trained):
    return {k: torch.from_numpy(v) for k, v in good_arrays(trained).items()}


def test_a_bf16_pt_converts_to_the_models_dtype(trained, workdir):
    torch.save({k: v.to(torch.bfloat16) for k, v in torch_state(trained).items()}, workdir / "bf16.pt")
    result = invoke("convert", "bf16.pt", "--config", trained["spec"], "--json", "--results", "out")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "completed"
    (run_dir,) = (workdir / "out" / "mamba").iterdir()
    with np.load(run_dir / "model.npz") as saved:
        loaded = saved["layers.0.A_log"]  # seqbench's name for mambapy's A_LOG
    rounded = torch.tensor(good_arrays(trained)[A_LOG]).to(torch.bfloat16).float().numpy()
    np.testing.assert_array_equal(loaded, rounded.astype(loaded.dtype))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda s: s.update({A_LOG: s[A_LOG].to_sparse()}),
            f"bad.pt: '{A_LOG}' is a torch.sparse_coo tensor",
        ),
        (lambda s: s.update({A_LOG: s[A_LOG].to("meta")}), f"bad.pt: '{A_LOG}' is a meta tensor"),
        (lambda s: s.update({("layers", 0): s.pop(A_LOG)}), "bad.pt: its key ('layers', 0) is not a name"),
        (lambda s: s.update({A_LOG: s[A_LOG].to(torch.complex64)}), f"'{A_LOG}' holds complex64 values"),
        (lambda s: s.update({A_LOG: torch.zeros(1).expand(10**9)}), f"'{A_LOG}' claims shape (1000000000,)"),
    ],
    ids=["sparse", "meta", "tuple-key", "complex", "expanded"],
)
def test_a_pt_that_is_not_dense_real_tensors_by_name_is_one_line(trained, workdir, change, message):
    state = torch_state(trained)
    change(state)
    torch.save(state, workdir / "bad.pt")
    import_refused(trained, workdir, "bad.pt", message)


def test_a_string_npz_is_one_line(trained, workdir):
    np.savez(workdir / "text.npz", **{**good_arrays(trained), A_LOG: np.array(["a", "b"])})
    import_refused(trained, workdir, "text.npz", f"text.npz: '{A_LOG}' holds <U1 values, not real numbers")


# ---- rows 4 and 5: NaN and complex weights --------------------------------------------------------------


def test_all_nan_weights_are_refused_naming_a_tensor(trained, workdir):
    np.savez(workdir / "nan.npz", **{k: np.full_like(v, np.nan) for k, v in good_arrays(trained).items()})
    import_refused(trained, workdir, "nan.npz", "nan.npz: weight '")
    result = invoke("convert", "nan.npz", "--config", trained["spec"])
    assert "' holds NaN or inf values; seqbench loads finite weights only" in result.stderr


def test_complex_weights_are_refused_not_cut_to_their_real_part(trained, workdir):
    np.savez(workdir / "complex.npz", **{**good_arrays(trained), A_LOG: good_arrays(trained)[A_LOG] + 1j})
    import_refused(
        trained, workdir, "complex.npz", f"complex.npz: '{A_LOG}' holds complex64 values, not real"
    )


# ---- row 6: exporting a run that did not complete ---------------------------------------------------------


@pytest.mark.parametrize("status", ["diverged", "interrupted", None])
def test_convert_of_a_run_that_did_not_complete_is_refused(trained, tmp_path, status):
    run_dir = shutil.copytree(trained["mamba"], tmp_path / "run")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["status"] = status
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    before = files_of(tmp_path)
    said = status or "unfinished (its metrics.json has no status)"
    one_line_error(
        invoke("convert", run_dir, "--to", "mambapy", "-o", tmp_path / "w.pt"),
        f"{run_dir} is {said}; `seqbench convert` exports completed runs only",
    )
    assert files_of(tmp_path) == before


def test_convert_of_a_run_with_nan_weights_is_refused(trained, tmp_path):
    run_dir = shutil.copytree(trained["mamba"], tmp_path / "run")
    with np.load(run_dir / "model.npz") as saved:
        weights = {k: saved[k] for k in saved.files}
    weights["head.bias"][:] = np.inf
    np.savez(run_dir / "model.npz", **weights)
    before = files_of(tmp_path)
    one_line_error(
        invoke("convert", run_dir, "--to", "mambapy", "-o", tmp_path / "w.pt"),
        f"{run_dir / 'model.npz'}: weight 'head.bias' holds NaN or inf values",
    )
    assert files_of(tmp_path) == before


@pytest.mark.parametrize(
    ("name", "sizes"), [("embed.weight", "0 inputs and 1"), ("head.bias", "1 inputs and 0")]
)
def test_convert_of_a_run_with_an_empty_first_or_last_weight_is_refused(trained, tmp_path, name, sizes):
    """Once an OverflowError traceback: a model of 0 inputs built to read them (found by
    tests/test_fuzz_files.py)."""
    run_dir = shutil.copytree(trained["mamba"], tmp_path / "run")
    with np.load(run_dir / "model.npz") as saved:
        weights = {k: saved[k] for k in saved.files}
    weights[name] = np.zeros((0, *weights[name].shape[1:]))
    np.savez(run_dir / "model.npz", **weights)
    before = files_of(tmp_path)
    one_line_error(
        invoke("convert", run_dir, "--to", "mambapy", "-o", tmp_path / "w.pt"),
        f"{run_dir / 'model.npz'} does not fit the model of {run_dir / 'spec.yaml'}: 'embed.weight' and "
        f"'head.bias' give {sizes} outputs",
    )
    assert files_of(tmp_path) == before


# ---- row 7, and the run folder's own weights: predict, sample, train --resume ---------------------------


class Payload:
    def __init__(self, sentinel):
        self.sentinel = sentinel

    def __reduce__(self):
        return (open, (str(self.sentinel), "w"))


COMMANDS = {
    "predict": ("torch", lambda run: ["predict", run]),
    "sample": ("lm", lambda run: ["sample", run, "--length", "5"]),
}


@pytest.mark.parametrize("command", COMMANDS)
def test_a_model_pt_holding_python_objects_is_one_line(trained, tmp_path, command):
    kind, args = COMMANDS[command]
    run_dir = shutil.copytree(trained[kind], tmp_path / "run")
    torch.save({"head.bias": Payload(tmp_path / "pwned")}, run_dir / "model.pt")
    before = files_of(tmp_path)
    result = invoke(*args(run_dir))
    one_line_error(
        result,
        f"{run_dir / 'model.pt'} is not a plain weights file (it holds Python objects); "
        "seqbench loads weights only",
    )
    assert "weights_only" not in result.stderr
    assert files_of(tmp_path) == before and not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("command", [["predict"], ["train", "--resume"]], ids=["predict", "train --resume"])
def test_a_model_npz_claiming_1e11_floats_is_one_line(trained, tmp_path, command):
    run_dir = shutil.copytree(trained["mamba"], tmp_path / "run")
    (run_dir / "predictions.png").unlink(missing_ok=True)  # something for --resume to finish
    with zipfile.ZipFile(run_dir / "model.npz") as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    members["head.bias.npy"] = npy_header((10**11,)) + bytes(8)
    write_zip(run_dir / "model.npz", members)
    before = files_of(tmp_path)
    one_line_error(invoke(*command, run_dir), "'head.bias' claims shape (100000000000,) of float64")
    assert files_of(tmp_path) == before


def test_a_pt_whose_pickle_is_larger_than_a_state_dicts_is_refused_before_unpickling(
    trained, workdir, monkeypatch
):
    monkeypatch.setattr("seqbench.models.weights_file.MAX_PICKLE", 1000)  # the real bound is 16 MiB
    torch.save({**torch_state(trained), "names": list(range(1000))}, workdir / "big.pt")
    import_refused(trained, workdir, "big.pt", "big.pt: its big/data.pkl is ")
    result = invoke("convert", "big.pt", "--config", trained["spec"])
    assert "bytes, far more than a state dict's names need" in result.stderr


def test_a_pt_whose_zip_names_are_not_utf8_is_one_line(trained, workdir):
    """Once a UnicodeDecodeError traceback from zipfile (found by tests/test_fuzz_files.py)."""
    with zipfile.ZipFile(workdir / "bad.pt", "w") as archive:
        archive.writestr("w\u00e9/data.pkl", b"")  # a UTF-8 name: the zip flags it so
    (workdir / "bad.pt").write_bytes(
        (workdir / "bad.pt").read_bytes().replace("\u00e9".encode(), b"\x82\x82")
    )
    import_refused(trained, workdir, "bad.pt", "bad.pt is not a weights file")
    result = invoke("convert", "bad.pt", "--config", trained["spec"])
    assert "a damaged zip archive ('utf-8' codec can't decode byte 0x82" in result.stderr


def test_a_legacy_pt_is_one_line(trained, workdir):
    """torch.save's format before PyTorch 1.6 is read whole by torch.load: refused, with the reason."""
    torch.save(torch_state(trained), workdir / "old.pt", _use_new_zipfile_serialization=False)
    import_refused(trained, workdir, "old.pt", "old.pt is not a weights file")
    result = invoke("convert", "old.pt", "--config", trained["spec"])
    assert "not a zip archive (torch.save's format since PyTorch 1.6: re-save an older file)" in result.stderr
