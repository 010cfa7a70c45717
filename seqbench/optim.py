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


def clip_grad_norm(grads: Params, max_norm: float | None) -> float:
    """Scale all gradients in place so that their joint L2 norm is at most max_norm.

    Returns the norm before clipping; max_norm None or 0 leaves the gradients as they are.
    """
    total = float(np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values())))
    if max_norm and total > max_norm:
        scale = max_norm / (total + 1e-6)
        for g in grads.values():
            g *= scale
    return total


class Optimizer:
    """Updates `params` in place from gradients with the same names."""

    def __init__(self, params: Params, lr: float, weight_decay: float = 0.0) -> None:
        self.params, self.lr, self.weight_decay = params, lr, weight_decay
        self.steps = 0
        self.state: dict[str, Params] = {}

    def step(self, grads: Params) -> None:
        self.steps += 1
        for name, p in self.params.items():
            self.update(name, p, grads[name])

    def update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        raise NotImplementedError

    def _buffer(self, kind: str, name: str, like: np.ndarray) -> np.ndarray:
        return self.state.setdefault(kind, {}).setdefault(name, np.zeros_like(like))

    def state_dict(self) -> dict[str, np.ndarray]:
        """Flat arrays for saving to .npz (no pickle)."""
        flat = {f"{kind}/{name}": v for kind, buffers in self.state.items() for name, v in buffers.items()}
        return {**flat, "steps": np.array(self.steps)}

    def load_state_dict(self, flat: dict[str, np.ndarray]) -> None:
        self.steps = int(flat["steps"])
        self.state = {}
        for key, value in flat.items():
            if "/" in key:
                kind, name = key.split("/", 1)
                self.state.setdefault(kind, {})[name] = np.array(value)


class SGD(Optimizer):
    def __init__(self, params: Params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr, weight_decay)
        self.momentum = momentum

    def update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            buf = self.state.get("momentum", {}).get(name)
            if buf is None:  # torch starts the buffer at the first gradient
                buf = self._buffer("momentum", name, p)
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

    def update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        b1, b2 = self.betas
        if self.weight_decay and self.decoupled:
            p *= 1 - self.lr * self.weight_decay
        elif self.weight_decay:
            g = g + self.weight_decay * p
        m, v = self._buffer("m", name, p), self._buffer("v", name, p)
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        bias1, bias2 = 1 - b1**self.steps, 1 - b2**self.steps
        p -= (self.lr / bias1) * m / (np.sqrt(v / bias2) + self.eps)


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
