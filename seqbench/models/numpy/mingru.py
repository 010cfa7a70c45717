"""minGRU, the minimal GRU of "Were RNNs All We Needed?" (Feng et al., 2024, arXiv 2410.01201).

Its gate and candidate depend on the input only, not on h_{t-1} (section 3.1):

    z_t  = sigmoid(x_t W_z + b_z)                 update gate
    h~_t = x_t W_h + b_h                          candidate state
    h_t  = (1 - z_t) * h_{t-1} + z_t * h~_t

so the recurrence is linear in h and all L states come from one scan over time
(section 3.1.2), here `linear_scan` with log(1 - z_t) = -softplus(k_t) as the
log-decay, computed stably from the gate's pre-activation k_t. A layer's state is
its last h (B, D): the scan's initial condition for the next chunk, and what
`layer_step` (the sequential mode, the last line above) updates.

`variant: log_space` is appendix B.3 as minGRU-pytorch implements it: no biases, a candidate
g(x_t W_h) > 0 with g(a) = a + 1/2 (a >= 0), sigmoid(a) (a < 0), so that every state is
positive (B.3.1's log-space scan computes log h_t; the same h_t as the scan here), on an inner
width int(D * expansion), read out through W_out (inner, D) when expansion != 1:

    z_t = sigmoid(x_t W_z),   h~_t = g(x_t W_h),   h_t = (1 - z_t) h_{t-1} + z_t h~_t,   y_t = h_t W_out
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seqbench.models.numpy.base import Params, RecurrentStack
from seqbench.models.numpy.forecasting import chrono_time_scales
from seqbench.models.numpy.layers import (
    init_uniform,
    linear,
    linear_backward,
    linear_scan,
    linear_scan_backward,
    sigmoid,
    softplus,
)

VARIANTS = ("paper", "log_space")  # section 3.1 with biases | appendix B.3 as minGRU-pytorch


def g(a: np.ndarray) -> np.ndarray:
    """Appendix B.3's positive activation: a + 1/2 for a >= 0, sigmoid(a) below (continuous at 0)."""
    return np.where(a >= 0, a + 0.5, sigmoid(a))


def g_grad(a: np.ndarray) -> np.ndarray:
    """dg/da: 1 for a >= 0, sigmoid(a) (1 - sigmoid(a)) below."""
    s = sigmoid(a)
    return np.where(a >= 0, 1.0, s * (1 - s)).astype(a.dtype, copy=False)


class MinGRU(RecurrentStack):
    """A stack of minGRU layers with a linear head on the last state (every state: a language model)."""

    options = ("variant", "expansion")

    def configure(self, variant: str = "paper", expansion: float = 1.0) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")
        if variant == "paper" and expansion != 1:
            raise ValueError("expansion != 1 needs variant log_space (the paper's minGRU has no expansion)")
        if variant == "log_space" and self.forecast.gate_init == "chrono":
            raise ValueError("gate_init chrono sets b_z, which the log_space variant does not have")
        self.variant, self.expansion = variant, expansion

    @property
    def log_space(self) -> bool:
        return self.variant == "log_space"

    @property
    def inner_size(self) -> int:
        """The width of the recurrence: int(D * expansion), as minGRU-pytorch."""
        return int(self.hidden_size * self.expansion)

    @classmethod
    def layer_weights(
        cls, input_size: int, hidden_size: int, variant: str = "paper", expansion: float = 1.0, **_: Any
    ) -> int:
        if variant == "log_space":
            inner = int(hidden_size * expansion)
            return 2 * input_size * inner + (inner * hidden_size if expansion != 1 else 0)  # W_z, W_h, W_out
        return 2 * input_size * hidden_size + 2 * hidden_size  # W_z, b_z, W_h, b_h

    def init_layer(
        self, rng: np.random.Generator, input_size: int, hidden_size: int, dtype: np.dtype
    ) -> Params:
        if self.log_space:
            inner = self.inner_size
            p = {
                "W_z": init_uniform(rng, (input_size, inner), input_size, dtype),
                "W_h": init_uniform(rng, (input_size, inner), input_size, dtype),
            }
            if self.expansion != 1:
                p["W_out"] = init_uniform(rng, (inner, hidden_size), inner, dtype)
            return p
        shape = (input_size, hidden_size)
        p = {
            "W_z": init_uniform(rng, shape, input_size, dtype),
            "b_z": init_uniform(rng, (hidden_size,), input_size, dtype),
            "W_h": init_uniform(rng, shape, input_size, dtype),
            "b_h": init_uniform(rng, (hidden_size,), input_size, dtype),
        }
        if self.forecast.gate_init == "chrono":  # z_t = sigmoid(-log u): 1 - z_t = u / (1 + u) of h kept
            p["b_z"][...] = -np.log(chrono_time_scales(rng, hidden_size, self.forecast.steps))
        return p

    def layer_forward(self, p: Params, x: np.ndarray, state: Any = None) -> tuple[np.ndarray, Any]:
        if self.log_space:
            return self._log_space_forward(p, x, state)
        k = linear(x, p["W_z"], p["b_z"])  # (B, L, D) gate pre-activation
        h_tilde = linear(x, p["W_h"], p["b_h"])  # (B, L, D)
        z = sigmoid(k)  # (B, L, D)
        log_a = -softplus(k)  # (B, L, D) log(1 - z)
        h = linear_scan(log_a, z * h_tilde, state)  # (B, L, D), from h_{-1} = state (or 0)
        return h, (x, z, h_tilde, log_a, h, state)

    def layer_backward(self, p: Params, dh: np.ndarray, cache: Any) -> tuple[np.ndarray, Params]:
        if self.log_space:
            return self._log_space_backward(p, dh, cache)
        x, z, h_tilde, log_a, h, h0 = cache
        dlog_a, db, _ = linear_scan_backward(dh, log_a, h, h0)  # (B, L, D) each
        dz = db * h_tilde
        dh_tilde = db * z
        dk = dz * z * (1 - z) - dlog_a * z  # d(-softplus(k))/dk = -sigmoid(k)
        dx_z, dW_z, db_z = linear_backward(dk, x, p["W_z"])
        dx_h, dW_h, db_h = linear_backward(dh_tilde, x, p["W_h"])
        return dx_z + dx_h, {"W_z": dW_z, "b_z": db_z, "W_h": dW_h, "b_h": db_h}

    def layer_step(self, p: Params, x: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        """h_t = (1 - z_t) h_{t-1} + z_t h~_t for one step: x (B, F), h_{t-1} (B, D) -> h_t (B, D) twice."""
        if self.log_space:
            z = sigmoid(x @ p["W_z"])  # (B, ED)
            h = state + z * (g(x @ p["W_h"]) - state)  # (B, ED)
            return (h @ p["W_out"] if "W_out" in p else h), h  # (B, D), (B, ED)
        z = sigmoid(linear(x, p["W_z"], p["b_z"]))  # (B, D)
        h_tilde = linear(x, p["W_h"], p["b_h"])  # (B, D)
        h = state + z * (h_tilde - state)  # (B, D)
        return h, h

    # ---- variant log_space (appendix B.3, minGRU-pytorch) ---------------------------------------

    def _log_space_forward(self, p: Params, x: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        k, a = x @ p["W_z"], x @ p["W_h"]  # (B, L, ED) gate and candidate pre-activations
        z, h_tilde = sigmoid(k), g(a)  # (B, L, ED), h~ > 0
        log_a = -softplus(k)  # (B, L, ED) log(1 - z)
        h = linear_scan(log_a, z * h_tilde, state)  # (B, L, ED), positive from a positive (or 0) state
        y = h @ p["W_out"] if "W_out" in p else h  # (B, L, D)
        return y, (x, k, a, z, h_tilde, log_a, h, state)

    def _log_space_backward(self, p: Params, dy: np.ndarray, cache: Any) -> tuple[np.ndarray, Params]:
        x, _, a, z, h_tilde, log_a, h, h0 = cache  # (the gate pre-activation k: through z)
        grads: Params = {}
        if "W_out" in p:
            dh, grads["W_out"], _ = linear_backward(dy, h, p["W_out"])  # (B, L, ED)
        else:
            dh = dy
        dlog_a, db, _ = linear_scan_backward(dh, log_a, h, h0)  # (B, L, ED) each
        dk = db * h_tilde * z * (1 - z) - dlog_a * z  # d(-softplus(k))/dk = -sigmoid(k)
        da = db * z * g_grad(a)
        dx_z, grads["W_z"], _ = linear_backward(dk, x, p["W_z"])
        dx_h, grads["W_h"], _ = linear_backward(da, x, p["W_h"])
        return dx_z + dx_h, grads

    def layer_initial_state(self, p: Params, batch_size: int) -> Any:
        """h (B, ED) of zeros (ED = D unless log_space with an expansion)."""
        width = self.inner_size if self.log_space else self.hidden_size
        return np.zeros((batch_size, width), dtype=self.dtype)

    def layer_state(self, h: np.ndarray, cache: Any) -> Any:
        """The last state h (B, ED): before the output projection, when there is one."""
        return (cache[6] if self.log_space else h)[:, -1].copy()
