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
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seqbench.models.numpy.base import Params, RecurrentStack
from seqbench.models.numpy.layers import (
    init_uniform,
    linear,
    linear_backward,
    linear_scan,
    linear_scan_backward,
    sigmoid,
    softplus,
)


class MinGRU(RecurrentStack):
    """A stack of minGRU layers with a linear head on the last state (every state: a language model)."""

    def init_layer(
        self, rng: np.random.Generator, input_size: int, hidden_size: int, dtype: np.dtype
    ) -> Params:
        shape = (input_size, hidden_size)
        return {
            "W_z": init_uniform(rng, shape, input_size, dtype),
            "b_z": init_uniform(rng, (hidden_size,), input_size, dtype),
            "W_h": init_uniform(rng, shape, input_size, dtype),
            "b_h": init_uniform(rng, (hidden_size,), input_size, dtype),
        }

    def layer_forward(self, p: Params, x: np.ndarray, state: Any = None) -> tuple[np.ndarray, Any]:
        k = linear(x, p["W_z"], p["b_z"])  # (B, L, D) gate pre-activation
        h_tilde = linear(x, p["W_h"], p["b_h"])  # (B, L, D)
        z = sigmoid(k)  # (B, L, D)
        log_a = -softplus(k)  # (B, L, D) log(1 - z)
        h = linear_scan(log_a, z * h_tilde, state)  # (B, L, D), from h_{-1} = state (or 0)
        return h, (x, z, h_tilde, log_a, h, state)

    def layer_backward(self, p: Params, dh: np.ndarray, cache: Any) -> tuple[np.ndarray, Params]:
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
        z = sigmoid(linear(x, p["W_z"], p["b_z"]))  # (B, D)
        h_tilde = linear(x, p["W_h"], p["b_h"])  # (B, D)
        h = state + z * (h_tilde - state)  # (B, D)
        return h, h
