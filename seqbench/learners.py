"""A spec's model bound to its optimiser: the learner the training loop drives, on either backend."""

from __future__ import annotations

from seqbench.models.numpy.learner import NumpyLearner
from seqbench.models.registry import build_model, model_class, model_options
from seqbench.optim import make_optimizer
from seqbench.spec import Spec
from seqbench.train import Learner


def build_learner(
    spec: Spec, n_features: int, n_outputs: int, vocab_size: int | None = None, loss: str = "mse"
) -> Learner:
    """The model of `spec` with its optimiser, weights drawn from `spec.seed` (the same on either backend).

    A language model has `vocab_size` (byte values in, logits over them out) and loss cross_entropy.
    """
    m, t = spec.model, spec.train
    window = (spec.dataset.seq_len, spec.dataset.horizon)
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
    learner.predict_batch = t.eval_batch_size
    return learner
