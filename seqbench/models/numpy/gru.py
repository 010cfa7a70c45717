"""The classic GRU cell (Cho et al., 2014), in the gate order and form of torch.nn.GRU.

    r_t = sigmoid(x_t W_xr + b_xr + h_{t-1} W_hr + b_hr)      reset gate
    z_t = sigmoid(x_t W_xz + b_xz + h_{t-1} W_hz + b_hz)      update gate
    n_t = tanh(x_t W_xn + b_xn + r_t * (h_{t-1} W_hn + b_hn))  candidate
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

The gates depend on h_{t-1}, so time is a loop; the input projections for all
steps are one matrix product before it, and the weight gradients one after it.
W_x (F, 3D) and W_h (D, 3D) hold the r, z, n blocks side by side.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seqbench.models.numpy.base import Params, RecurrentStack
from seqbench.models.numpy.layers import init_uniform, linear, linear_backward, sigmoid


class GRU(RecurrentStack):
    """A stack of GRU layers with a linear head on the last state."""

    def init_layer(
        self, rng: np.random.Generator, input_size: int, hidden_size: int, dtype: np.dtype
    ) -> Params:
        D = hidden_size
        return {
            "W_x": init_uniform(rng, (input_size, 3 * D), D, dtype),
            "b_x": init_uniform(rng, (3 * D,), D, dtype),
            "W_h": init_uniform(rng, (D, 3 * D), D, dtype),
            "b_h": init_uniform(rng, (3 * D,), D, dtype),
        }

    def layer_forward(self, p: Params, x: np.ndarray) -> tuple[np.ndarray, Any]:
        B, L, _ = x.shape
        D = p["W_h"].shape[0]
        xp = linear(x, p["W_x"], p["b_x"])  # (B, L, 3D) input projections, all steps
        h_prev = np.zeros((B, L, D), dtype=x.dtype)  # h_{t-1} for every t
        gates = np.empty((B, L, 3 * D), dtype=x.dtype)  # r, z, n per step
        hn = np.empty((B, L, D), dtype=x.dtype)  # h_{t-1} W_hn + b_hn per step
        h = np.zeros((B, D), dtype=x.dtype)
        for t in range(L):
            h_prev[:, t] = h
            hp = h @ p["W_h"] + p["b_h"]  # (B, 3D)
            rz = sigmoid(xp[:, t, : 2 * D] + hp[:, : 2 * D])  # (B, 2D)
            r, z = rz[:, :D], rz[:, D:]
            n = np.tanh(xp[:, t, 2 * D :] + r * hp[:, 2 * D :])  # (B, D)
            h = (1 - z) * n + z * h
            gates[:, t, : 2 * D], gates[:, t, 2 * D :], hn[:, t] = rz, n, hp[:, 2 * D :]
        h_all = np.concatenate([h_prev[:, 1:], h[:, None]], axis=1)  # (B, L, D)
        return h_all, (x, h_prev, gates, hn)

    def layer_backward(self, p: Params, dh: np.ndarray, cache: Any) -> tuple[np.ndarray, Params]:
        x, h_prev, gates, hn = cache
        B, L, D = h_prev.shape
        d_xp = np.empty((B, L, 3 * D), dtype=x.dtype)  # dL/d(input projection)
        d_hp = np.empty((B, L, 3 * D), dtype=x.dtype)  # dL/d(h_{t-1} W_h + b_h)
        W_h_T = p["W_h"].T
        carry = np.zeros((B, D), dtype=x.dtype)  # dL/dh_t from step t+1
        for t in reversed(range(L)):
            r, z, n = gates[:, t, :D], gates[:, t, D : 2 * D], gates[:, t, 2 * D :]
            g = dh[:, t] + carry  # (B, D) total gradient of h_t
            da_n = g * (1 - z) * (1 - n * n)  # through tanh
            da_z = g * (h_prev[:, t] - n) * z * (1 - z)
            da_r = da_n * hn[:, t] * r * (1 - r)
            d_xp[:, t, :D], d_xp[:, t, D : 2 * D], d_xp[:, t, 2 * D :] = da_r, da_z, da_n
            d_hp[:, t, :D], d_hp[:, t, D : 2 * D], d_hp[:, t, 2 * D :] = da_r, da_z, da_n * r
            carry = g * z + d_hp[:, t] @ W_h_T
        dx, dW_x, db_x = linear_backward(d_xp, x, p["W_x"])
        _, dW_h, db_h = linear_backward(d_hp, h_prev, p["W_h"], need_dx=False)  # dh_prev came step by step
        return dx, {"W_x": dW_x, "b_x": db_x, "W_h": dW_h, "b_h": db_h}
