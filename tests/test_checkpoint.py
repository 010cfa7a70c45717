"""Checkpoints on disk: exact round trip, crash-safe pair of files, never unpickled."""

import json

import numpy as np
import pytest

from seqbench.errors import SeqbenchError
from seqbench.training.checkpoint import CHECKPOINT_FILE, read_checkpoint, remove_checkpoint, save_checkpoint
from seqbench.training.loop import Checkpoint, EpochRecord, FitResult


def checkpoint(epoch, seed=0):
    rng = np.random.default_rng(seed)
    rng.permutation(10)
    rng_state = rng.bit_generator.state
    history = [EpochRecord(k, 1.0 / k, 0.1 + 1.0 / 3**k, 1e-3 * k, 0.25) for k in range(1, epoch + 1)]
    progress = FitResult(
        history=history, best_epoch=epoch, best_val_loss=history[-1].val_loss if history else float("inf"),
        stale=0, train_seconds=0.25 * epoch, samples_seen=10 * epoch,
    )  # fmt: skip
    weights = {"layers.0.W": rng.normal(size=(3, 4)).astype(np.float32), "head.bias": np.arange(2.0)}
    learner_state = {**{f"params/{k}": v + epoch for k, v in weights.items()}, "optim/steps": np.array(7)}
    return Checkpoint(progress, learner_state, weights, rng_state)


@pytest.mark.parametrize("epoch", [0, 3])
def test_round_trip_is_exact(tmp_path, epoch):
    saved = checkpoint(epoch)
    save_checkpoint(tmp_path, saved, {"data_sha256": "abc"})
    loaded, record = read_checkpoint(tmp_path)
    assert record["data_sha256"] == "abc" and record["epoch"] == epoch
    assert loaded.progress == saved.progress  # floats through JSON unchanged, inf included
    assert loaded.rng_state == saved.rng_state
    for ours, theirs in (
        (loaded.learner_state, saved.learner_state),
        (loaded.best_weights, saved.best_weights),
    ):
        assert ours.keys() == theirs.keys()
        for name in ours:
            np.testing.assert_array_equal(ours[name], theirs[name])
            assert ours[name].dtype == theirs[name].dtype
    rng = np.random.default_rng()
    rng.bit_generator.state = loaded.rng_state
    expected = np.random.default_rng(0)
    expected.permutation(10)
    assert (rng.permutation(10) == expected.permutation(10)).all()


def test_each_epoch_replaces_the_last_and_a_crash_between_the_two_files_keeps_a_complete_pair(
    tmp_path, monkeypatch
):
    save_checkpoint(tmp_path, checkpoint(1))
    save_checkpoint(tmp_path, checkpoint(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-0002.npz", CHECKPOINT_FILE]

    import seqbench.training.checkpoint as module

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies after the .npz of epoch 3, before its JSON

    monkeypatch.setattr(module, "atomic_write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, checkpoint(3))
    loaded, record = read_checkpoint(tmp_path)
    assert record["epoch"] == 2 and loaded.progress.epochs_run == 2


def test_object_arrays_are_refused(tmp_path):
    save_checkpoint(tmp_path, checkpoint(1))
    npz = tmp_path / "checkpoint-0001.npz"
    np.savez(npz, **{"learner/params/w": np.array([{"a": 1}], dtype=object)})
    record = json.loads((tmp_path / CHECKPOINT_FILE).read_text())
    import hashlib

    record["sha256"] = hashlib.sha256(npz.read_bytes()).hexdigest()
    (tmp_path / CHECKPOINT_FILE).write_text(json.dumps(record))
    with pytest.raises(SeqbenchError, match="holds object values, not real numbers"):
        read_checkpoint(tmp_path)


def test_the_arrays_file_name_cannot_point_outside_the_run(tmp_path):
    (tmp_path / "run").mkdir()
    save_checkpoint(tmp_path / "run", checkpoint(1))
    record = json.loads((tmp_path / "run" / CHECKPOINT_FILE).read_text())
    (tmp_path / "elsewhere.npz").write_bytes((tmp_path / "run" / "checkpoint-0001.npz").read_bytes())
    record["arrays"] = "../elsewhere.npz"
    (tmp_path / "run" / CHECKPOINT_FILE).write_text(json.dumps(record))
    with pytest.raises(SeqbenchError, match=r"missing elsewhere\.npz"):
        read_checkpoint(tmp_path / "run")


def test_remove(tmp_path):
    save_checkpoint(tmp_path, checkpoint(1))
    remove_checkpoint(tmp_path)
    assert not list(tmp_path.iterdir())


def test_saved_weights_are_never_unpickled(tmp_path):
    """model.npz is read without unpickling: an object array is refused, its payload never runs."""
    from seqbench.spec import Spec
    from seqbench.training.learners import build_learner

    sentinel = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(sentinel), "w"))

    array = np.empty(1, dtype=object)
    array[0] = Payload()
    np.savez(tmp_path / "model.npz", **{"head.bias": array})
    spec = Spec.model_validate(
        {"dataset": {"source": "synthetic", "name": "sine"}, "model": {"hidden_size": 2}}
    )
    with pytest.raises(ValueError, match="holds object values, not real numbers"):
        build_learner(spec, 1, 1).load(tmp_path / "model.npz")
    assert not sentinel.exists()


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda s: s.update(rng_state="x"), "rng_state is not a generator state"),
        (
            lambda s: s["rng_state"].update(state={"state": "no", "inc": 1}),
            "rng_state is not a generator state",
        ),
        (
            lambda s: s["progress"]["history"].append(dict(s["progress"]["history"][-1], epoch=4)),
            "epoch 3 but a history of 4",
        ),
        (lambda s: s.update(epoch="3"), "epoch '3' but a history of 3"),
        (lambda s: s["progress"].update(best_epoch=9), "best_epoch, stale or samples_seen is out of range"),
        (lambda s: s["progress"].update(stale=-1), "best_epoch, stale or samples_seen is out of range"),
        (lambda s: s["progress"]["history"][0].update(train_loss="big"), "history entry 1 is not epoch 1"),
        (lambda s: s["progress"].update(train_seconds=None), "train_seconds is not a duration"),
        (lambda s: s["progress"].update(history=None), "unreadable checkpoint"),
    ],
)
def test_an_edited_checkpoint_is_refused_in_one_line(tmp_path, edit, reason):
    save_checkpoint(tmp_path, checkpoint(3))
    state = json.loads((tmp_path / CHECKPOINT_FILE).read_text())
    edit(state)
    (tmp_path / CHECKPOINT_FILE).write_text(json.dumps(state))
    with pytest.raises(SeqbenchError) as info:
        read_checkpoint(tmp_path)
    assert reason in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith(f"cannot resume {tmp_path}: unreadable checkpoint (")
