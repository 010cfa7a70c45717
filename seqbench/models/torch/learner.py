"""Binds a Torch model to its optimiser: one training step, prediction, saving.

The twin of seqbench/models/numpy/learner.py, with the same interface (see
seqbench.training.loop.Learner) and the same numbers: the same losses, global-norm clipping
(torch.nn.utils.clip_grad_norm_, which scales by max_norm / (total + 1e-6) like
seqbench.models.optim), and torch.optim's SGD / Adam / AdamW with the hyperparameters of
seqbench.models.optim.make_optimizer. Everything that leaves the learner is plain NumPy
arrays: predictions (float64), snapshots, and checkpoint state, whose optimiser part
uses the NumPy optimiser's names (`m/NAME`, `v/NAME`, `momentum/NAME`, `steps`), so a
checkpoint is readable by either backend. Weights are saved as `model.pt`, a
state_dict of CPU tensors that `torch.load(..., weights_only=True)` reads.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqbench.errors import SeqbenchError
from seqbench.io import atomic_path
from seqbench.models.numpy.learner import NumpyRecurrent
from seqbench.models.numpy.memory import keep_freed_memory, windows_per_pass
from seqbench.models.registry import model_class
from seqbench.models.torch.base import TorchStack, load_numpy, to_numpy
from seqbench.models.torch.layers import forecast_loss
from seqbench.models.weights_file import open_weights

Arrays = dict[str, np.ndarray]

# torch.optim state key -> the NumPy optimiser's buffer name (seqbench.models.optim)
STATE_NAMES = {"momentum_buffer": "momentum", "exp_avg": "m", "exp_avg_sq": "v"}
DEVICES = ("auto", "cpu", "cuda", "mps")


class TorchLearner:
    """The training-loop interface (see seqbench.training.loop.Learner) for a Torch model."""

    weights_file = "model.pt"

    def __init__(
        self,
        model: TorchStack,
        optimizer: torch.optim.Optimizer,
        grad_clip: float | None,
        predict_batch: int = 1024,
        loss: str = "mse",
    ) -> None:
        self.model, self.optimizer, self.grad_clip = model, optimizer, grad_clip
        self.predict_batch = predict_batch
        self.loss = loss  # a forecast's (mse, mae, mse+mae) or cross_entropy (next-byte logits of an LM)
        first = next(model.parameters())
        self.device, self.dtype = first.device, first.dtype
        self.steps = 0  # optimiser steps taken (torch keeps no count for SGD)
        if self.device.type == "cpu":
            keep_freed_memory()  # large temporaries reuse warm pages (see numpy/memory.py)

    @property
    def n_params(self) -> int:
        return int(sum(p.numel() for p in self.model.parameters()))

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        """Inputs on the model's device: byte ids as int64, anything else in the model's dtype."""
        array = np.asarray(array)
        dtype = torch.long if array.dtype.kind in "iu" else self.dtype
        return torch.as_tensor(array, dtype=dtype, device=self.device)

    def train_step(self, x: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None) -> float:
        """One optimiser step on a batch; returns its loss (train.loss, or nats per byte) before the step."""
        self.optimizer.zero_grad(set_to_none=True)
        self.model.train()  # dropout on, for this step only
        try:
            out = self.model(self._tensor(x))
        finally:
            self.model.eval()
        if self.loss == "cross_entropy":  # out (B, L, V) logits, y (B, L) byte ids
            target = torch.as_tensor(np.asarray(y), dtype=torch.long, device=self.device)
            loss = torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), target.reshape(-1))
        else:
            weights = None if weight is None else self._tensor(weight)
            loss = forecast_loss(self.loss, out, self._tensor(y), weights)
        value = float(loss.detach())
        if not math.isfinite(value):
            return value
        loss.backward()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        self.steps += 1
        return value

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Forecasts for every window, in batches to bound memory: (N, L, F) -> (N, O), float64.

        At most `predict_batch` windows a pass, fewer for long windows (`windows_per_pass`)."""
        if len(x) == 0:
            return np.zeros((0, self.model.output_size))
        batch = windows_per_pass(self.predict_batch, x.shape[1] if x.ndim > 1 else 1)
        with torch.inference_mode():  # no autograd bookkeeping at all (views, version counters)
            parts = [
                self.model(self._tensor(x[i : i + batch])).cpu().numpy() for i in range(0, len(x), batch)
            ]
        return np.concatenate(parts).astype(np.float64)

    # ---- the recurrent mode (an LM's evaluation and generation) ----------------------------------

    def initial_state(self, batch_size: int) -> Any:
        return self.model.initial_state(batch_size)

    def forward_state(self, x: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        """x (B, L) -> outputs at every step (B, L, O), float64, and the state after step L."""
        with torch.inference_mode():  # no autograd bookkeeping at all: the recurrent mode never trains
            y, state = self.model.forward_state(self._tensor(x), state)
        return y.cpu().numpy().astype(np.float64), state

    def step(self, x_t: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        """One step: x_t (B,) -> outputs (B, O), float64, and the next state."""
        with torch.inference_mode():
            y, state = self.model.step(self._tensor(x_t), state)
        return y.cpu().numpy().astype(np.float64), state

    def decoder(self) -> NumpyRecurrent:
        """What a generation runs on (reads the prompt, then steps): the model's NumPy twin, on copies of
        its weights. One sequence's step costs more in calls than in arithmetic, and a NumPy call about
        half a torch one (Mamba at the Shakespeare LM's size: 0.31 against 0.69 ms a byte); the prompt is
        read there too, since torch's worker threads, still spinning after a torch call, slowed the
        NumPy steps after it by up to 25 % (flatness 1.22x against 1.02x). The parity tests hold the two
        backends to the same function."""
        return NumpyRecurrent(self.model.numpy_twin())

    def snapshot(self) -> Arrays:
        return to_numpy(self.model)

    def restore(self, snapshot: Arrays) -> None:
        load_numpy(self.model, snapshot)

    # ---- optimiser state and checkpoints, as plain arrays ---------------------------------------

    def optimizer_state(self) -> Arrays:
        """The optimiser's buffers by the NumPy names (`m/NAME`, `v/NAME`, `momentum/NAME`) and `steps`."""
        arrays: Arrays = {}
        for name, param in self.model.named_parameters():
            state = self.optimizer.state.get(param, {})
            for key, kind in STATE_NAMES.items():
                if state.get(key) is not None:
                    arrays[f"{kind}/{name}"] = state[key].detach().cpu().numpy().copy()
        return {**arrays, "steps": np.array(self.steps)}

    def load_optimizer_state(self, arrays: Arrays) -> None:
        """The inverse of `optimizer_state` (also reads the NumPy optimiser's state_dict)."""
        params = dict(self.model.named_parameters())
        # torch.optim numbers parameters in the order its groups list them
        order = {id(p): i for i, p in enumerate(p for g in self.optimizer.param_groups for p in g["params"])}
        torch_key = {kind: key for key, kind in STATE_NAMES.items()}
        steps = int(arrays["steps"])
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in arrays.items():
            kind, _, name = key.partition("/")
            if not name:
                continue
            if kind not in torch_key or name not in params or id(params[name]) not in order:
                raise ValueError(f"optimizer state '{key}' does not belong to this model and optimiser")
            entry = state.setdefault(order[id(params[name])], {})
            entry[torch_key[kind]] = torch.tensor(np.asarray(value)).reshape(params[name].shape)
            if kind in ("m", "v"):  # Adam and AdamW count steps per parameter
                entry["step"] = torch.tensor(float(steps))
        full = self.optimizer.state_dict()
        full["state"] = state
        self.optimizer.load_state_dict(full)  # casts each buffer to its parameter's dtype and device
        self.steps = steps

    def state_dict(self) -> Arrays:
        """Weights (`params/NAME`) and optimiser state (`optim/...`, step count included), copied."""
        state = {f"params/{k}": v for k, v in self.snapshot().items()}
        state.update({f"optim/{k}": v for k, v in self.optimizer_state().items()})
        return state

    def load_state_dict(self, state: Arrays) -> None:
        """The inverse of `state_dict`; a missing or misshapen weight is a ValueError naming it."""
        self.restore({k.removeprefix("params/"): v for k, v in state.items() if k.startswith("params/")})
        self.load_optimizer_state(
            {k.removeprefix("optim/"): v for k, v in state.items() if k.startswith("optim/")}
        )

    # ---- weights files ------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Weights as a state_dict of CPU tensors (torch.save), written atomically."""
        state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        with atomic_path(path) as tmp:
            torch.save(state, tmp)

    def load(self, path: Path) -> None:
        """Weights saved by `save` (or a NumPy model's .npz), each read once its name and shape are
        the model's; never unpickles arbitrary objects."""
        load_numpy(self.model, open_weights(path))


# ---- building a learner from spec values ---------------------------------------------------------


def resolve_device(device: str = "auto") -> torch.device:
    """`auto` picks CUDA, then MPS, else the CPU; an accelerator asked for but absent is a SeqbenchError."""
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if device == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if device not in DEVICES:
        raise SeqbenchError(f"unknown train.device '{device}'; choose one of: {', '.join(DEVICES)}")
    if (device == "cuda" and not cuda) or (device == "mps" and not mps):
        raise SeqbenchError(
            f"train.device '{device}' is not available on this machine (PyTorch {torch.__version__}); "
            "use train.device: auto or cpu"
        )
    return torch.device(device)


def make_torch_optimizer(
    name: str, params: Any, lr: float, weight_decay: float = 0.0, momentum: float = 0.0
) -> torch.optim.Optimizer:
    """torch.optim's twin of seqbench.models.optim.make_optimizer (sgd | adam | adamw), same hyperparameters.

    The fused implementation (one kernel per parameter) where this torch and device have one:
    on the CPU it measured 3-5x faster than the per-operation default (0.15 ms vs 0.67 ms per
    Adam step for a two-layer Mamba), which matters for small models.
    """
    params = list(params)
    if name == "sgd":
        cls, kwargs = torch.optim.SGD, {"momentum": momentum}
    elif name in ("adam", "adamw"):
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        kwargs = {"betas": (0.9, 0.999), "eps": 1e-8}
    else:
        raise SeqbenchError(f"unknown optimizer '{name}'; choose sgd, adam or adamw")
    try:
        return cls(params, lr=lr, weight_decay=weight_decay, fused=True, **kwargs)
    except (RuntimeError, ValueError, TypeError):  # no fused kernel for this device or torch version
        return cls(params, lr=lr, weight_decay=weight_decay, **kwargs)


def build_torch_learner(
    model: str,
    n_features: int,
    n_outputs: int,
    *,
    hidden_size: int = 128,
    n_layers: int = 1,
    options: dict[str, Any] | None = None,
    optimizer: str = "adam",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    grad_clip: float | None = 1.0,
    dtype: str = "float32",
    seed: int = 0,
    device: str = "auto",
    threads: int | None = None,
    loss: str = "mse",
) -> TorchLearner:
    """The Torch model `model` with its optimiser, weights drawn from `seed` exactly as NumPy's.

    `options` are the model's extra spec keys (its class's `options`, e.g. Mamba's state_size).
    `threads` sets torch.set_num_threads when given; `device` is auto | cpu | cuda | mps.
    """
    if threads:
        torch.set_num_threads(threads)
    target = resolve_device(device)
    if target.type == "mps" and dtype == "float64":
        raise SeqbenchError(
            "train.dtype float64 is not supported on MPS; use train.dtype: float32 or device: cpu"
        )
    cls = model_class(model, "torch")
    net = cls(
        n_features,
        n_outputs,
        hidden_size=hidden_size,
        n_layers=n_layers,
        rng=np.random.default_rng(seed),
        dtype=np.dtype(dtype),
        **(options or {}),
    ).to(target)
    opt = make_torch_optimizer(optimizer, net.parameters(), lr, weight_decay=weight_decay, momentum=momentum)
    return TorchLearner(net, opt, grad_clip, loss=loss)
