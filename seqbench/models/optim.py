"""NumPy optimisers (SGD with momentum, Adam, AdamW) and global-norm gradient clipping.

The update formulas follow torch.optim, so that one step gives the same new
weights on either backend:
    SGD:   g += wd * p;  buf = momentum * buf + g;  p -= lr * buf
    Adam:  g += wd * p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
           p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    AdamW: p *= 1 - lr * wd, then Adam without the wd term (decoupled decay).

`scheduled_lr` gives the learning rate of each epoch: a linear warm-up, then
constant or cosine decay (after nanoGPT's `get_lr`, counted in epochs).
"""

from __future__ import annotations

import math

import numpy as np

Params = dict[str, np.ndarray]


def scheduled_lr(base_lr: float, epoch: int, epochs: int, schedule: str, warmup_epochs: int = 0) -> float:
    """The learning rate of `epoch` (counted from 1) out of `epochs`; > 0 for every such epoch.

    With W = warmup_epochs and E = epochs:
        warm-up, epoch k <= W:   base_lr * k / (W + 1)              (rises linearly towards base_lr)
        constant, k > W:         base_lr
        cosine, k > W:           base_lr * (1 + cos(pi * (k - W - 1) / (E - W))) / 2
    so the first epoch after warm-up runs at base_lr and the cosine would reach 0 one
    epoch after the last (the last epoch still learns, at base_lr * (1 - cos(pi / (E - W))) / 2).
    """
    if epoch <= warmup_epochs:
        return base_lr * epoch / (warmup_epochs + 1)
    if schedule == "constant":
        return base_lr
    if schedule == "cosine":
        progress = (epoch - warmup_epochs - 1) / max(epochs - warmup_epochs, 1)  # in [0, 1)
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    raise ValueError(f"unknown schedule '{schedule}'; choose constant or cosine")


def clip_grad_norm(grad: np.ndarray, max_norm: float | None) -> float:
    """Scale all gradients, one flat array (see Optimizer.flatten), so that their L2 norm is at
    most max_norm, in place. Returns the norm before clipping; max_norm None or 0 leaves them as they are.
    """
    g64 = grad.astype(np.float64, copy=False)
    total = float(np.sqrt(g64 @ g64))
    if max_norm and total > max_norm:
        grad *= max_norm / (total + 1e-6)
    return total


class Optimizer:
    """Updates `params` in place from gradients with the same names.

    All parameters live in one flat buffer (`self.flat`); the entries of `params` are
    replaced by views into it, so the model sees every update, and one step is a handful
    of array operations over the whole buffer instead of a few per parameter.
    """

    def __init__(self, params: Params, lr: float, weight_decay: float = 0.0) -> None:
        self.params, self.lr, self.weight_decay = params, lr, weight_decay
        self.names = list(params)
        dtype = next(iter(params.values())).dtype if params else np.float64
        self.flat = np.concatenate([params[n].ravel() for n in self.names]).astype(dtype, copy=False)
        self.slices: dict[str, slice] = {}
        offset = 0
        for name in self.names:
            shape = params[name].shape
            size = int(np.prod(shape))
            self.slices[name] = slice(offset, offset + size)
            params[name] = self.flat[offset : offset + size].reshape(shape)
            offset += size
        self.steps = 0
        self.state: dict[str, np.ndarray] = {}  # kind (m, v, momentum) -> flat buffer

    def flatten(self, grads: Params) -> np.ndarray:
        """The gradients of every parameter in one flat array, in the buffer's order."""
        return np.concatenate([grads[n].ravel() for n in self.names]).astype(self.flat.dtype, copy=False)

    def step(self, grads: Params) -> None:
        self.step_flat(self.flatten(grads))

    def step_flat(self, grad: np.ndarray) -> None:
        self.steps += 1
        self.update(self.flat, grad)

    def update(self, p: np.ndarray, g: np.ndarray) -> None:
        raise NotImplementedError

    def _buffer(self, kind: str) -> np.ndarray:
        if kind not in self.state:
            self.state[kind] = np.zeros_like(self.flat)
        return self.state[kind]

    def state_dict(self) -> dict[str, np.ndarray]:
        """Plain arrays, one per buffer and parameter, for saving to .npz (no pickle)."""
        arrays = {
            f"{kind}/{name}": buffer[self.slices[name]].reshape(self.params[name].shape)
            for kind, buffer in self.state.items()
            for name in self.names
        }
        return {**arrays, "steps": np.array(self.steps)}

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        self.steps = int(arrays["steps"])
        self.state = {}
        for key, value in arrays.items():
            if "/" in key:
                kind, name = key.split("/", 1)
                self._buffer(kind)[self.slices[name]] = np.asarray(value).ravel()


class SGD(Optimizer):
    def __init__(self, params: Params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr, weight_decay)
        self.momentum = momentum

    def update(self, p: np.ndarray, g: np.ndarray) -> None:
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            first = "momentum" not in self.state
            buf = self._buffer("momentum")
            if first:  # torch starts the buffer at the first gradient
                buf[...] = g
            else:
                buf *= self.momentum
                buf += g
            g = buf
        p -= self.lr * g


class Adam(Optimizer):
    decoupled = False

    def __init__(
        self,
        params: Params,
        lr: float,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        super().__init__(params, lr, weight_decay)
        self.betas, self.eps = betas, eps

    def update(self, p: np.ndarray, g: np.ndarray) -> None:
        b1, b2 = self.betas
        if self.weight_decay and self.decoupled:
            p *= 1 - self.lr * self.weight_decay
        elif self.weight_decay:
            g = g + self.weight_decay * p
        m, v = self._buffer("m"), self._buffer("v")
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        bias1, bias2 = 1 - b1**self.steps, 1 - b2**self.steps
        denom = v / bias2
        np.sqrt(denom, out=denom)
        denom += self.eps
        p -= (self.lr / bias1) * m / denom


class AdamW(Adam):
    decoupled = True


def make_optimizer(
    name: str, params: Params, lr: float, weight_decay: float = 0.0, momentum: float = 0.0
) -> Optimizer:
    """The optimiser called `name` (sgd | adam | adamw) over `params`."""
    if name == "sgd":
        return SGD(params, lr, momentum=momentum, weight_decay=weight_decay)
    optimizers = {"adam": Adam, "adamw": AdamW}
    return optimizers[name](params, lr, weight_decay=weight_decay)
