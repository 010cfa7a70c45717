"""A spec's model bound to its optimiser: the learner the training loop drives, on either backend."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from seqbench.errors import RunFailed, SeqbenchError
from seqbench.models.numpy.learner import NumpyLearner
from seqbench.models.optim import make_optimizer
from seqbench.models.registry import build_model, count_weights, model_class, model_options
from seqbench.spec import Spec
from seqbench.training.loop import Learner


def build_learner(
    spec: Spec, n_features: int, n_outputs: int, vocab_size: int | None = None, loss: str | None = None
) -> Learner:
    """The model of `spec` with its optimiser, weights drawn from `spec.seed` (the same on either backend).

    A language model has `vocab_size` (byte values in, logits over them out) and loss cross_entropy;
    a forecast's loss is spec.train.loss.
    """
    loss = loss or spec.train.loss
    m, t = spec.model, spec.train
    window = (spec.dataset.seq_len, spec.dataset.horizon)
    weights = count_weights(m, n_features, n_outputs, vocab_size, window)
    check_fits_in_memory(spec, weights)
    try:
        learner = _build(spec, n_features, n_outputs, vocab_size, loss, window)
    except MemoryError:
        raise RunFailed(
            f"ran out of memory building the {m.name} model ({weights:,} weights); "
            "lower model.hidden_size or model.n_layers"
        ) from None
    learner.predict_batch = t.eval_batch_size
    return learner


def _build(
    spec: Spec, n_features: int, n_outputs: int, vocab_size: int | None, loss: str, window: tuple[int, int]
) -> Learner:
    m, t = spec.model, spec.train
    if m.backend == "torch":
        options = model_options(m, model_class(m.name, m.backend), vocab_size, window)  # torch installed?
        from seqbench.models.torch.learner import build_torch_learner

        learner: Learner = build_torch_learner(
            m.name,
            n_features,
            n_outputs,
            hidden_size=m.hidden_size,
            n_layers=m.n_layers,
            options=options,
            optimizer=t.optimizer,
            lr=t.lr,
            weight_decay=t.weight_decay,
            momentum=t.momentum,
            grad_clip=t.grad_clip,
            dtype=t.dtype,
            seed=spec.seed,
            device=t.device,
            threads=t.threads,
            loss=loss,
        )
    else:
        model = build_model(
            m, n_features, n_outputs, spec.seed, t.dtype, vocab_size=vocab_size, window=window
        )
        optimizer = make_optimizer(
            t.optimizer, model.params, t.lr, weight_decay=t.weight_decay, momentum=t.momentum
        )
        learner = NumpyLearner(model, optimizer, t.grad_clip, loss=loss)
    return learner


TRAINING_COPIES = 4  # a training step holds the weights, their gradients and Adam's two moments


def check_fits_in_memory(spec: Spec, weights: int) -> None:
    """A model whose training state (TRAINING_COPIES x its weights) is more than this machine's memory
    is a SeqbenchError naming hidden_size and n_layers, raised before a weight is drawn."""
    memory = memory_bytes()
    need = weights * np.dtype(spec.train.dtype).itemsize * TRAINING_COPIES
    if memory is None or need <= memory:
        return
    m = spec.model
    raise SeqbenchError(
        f"model.hidden_size {m.hidden_size} and model.n_layers {m.n_layers} make a {m.name} of {weights:,} "
        f"weights, {need / 2**30:,.1f} GiB to train in {spec.train.dtype} (weights, gradients and the "
        f"optimiser's state), more than this machine's {memory / 2**30:,.1f} GiB of memory; "
        "lower model.hidden_size or model.n_layers"
    )


def memory_bytes() -> int | None:
    """The memory this process may use: the machine's, or its cgroup limit if lower; None if unknown."""
    try:
        limits = [os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")]
    except (AttributeError, ValueError, OSError):  # not a POSIX system
        return None
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            limits.append(int(text))
    return min(limits)


@contextlib.contextmanager
def thread_limit(threads: int | None) -> Iterator[None]:
    """At most `threads` BLAS/OpenMP threads inside (None: as they are). `train.threads` pins them
    for a run, so that its numbers repeat bit for bit; a sweep's workers share the cores with it."""
    if threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits  # scikit-learn brings threadpoolctl

    with threadpool_limits(limits=threads):
        yield
