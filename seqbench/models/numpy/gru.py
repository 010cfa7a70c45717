"""The classic GRU cell (Cho et al., 2014), in the gate order and form of torch.nn.GRU.

    r_t = sigmoid(x_t W_xr + b_xr + h_{t-1} W_hr + b_hr)      reset gate
    z_t = sigmoid(x_t W_xz + b_xz + h_{t-1} W_hz + b_hz)      update gate
    n_t = tanh(x_t W_xn + b_xn + r_t * (h_{t-1} W_hn + b_hn))  candidate
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

The gates depend on h_{t-1}, so time is a loop. Everything that does not need the
loop is outside it: the input projections of all steps are one matrix product before
it, the local derivatives of every gate one array operation after it, and the weight
gradients one product after the backward loop. Inside, arrays are time-major (L, B, .)
so that each step reads contiguous memory. W_x (F, 3D) and W_h (D, 3D) hold the r, z, n
blocks side by side. A layer's state is its last h (B, D): the loop's h_{-1} for the next
chunk, and what `layer_step` (the cell, once) updates.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seqbench.models.numpy.base import Params, RecurrentStack
from seqbench.models.numpy.forecasting import chrono_time_scales
from seqbench.models.numpy.layers import init_uniform, linear, sigmoid


class GRU(RecurrentStack):
    """A stack of GRU layers with a linear head on the last state (every state: a language model)."""

    @classmethod
    def layer_weights(cls, input_size: int, hidden_size: int, **options: Any) -> int:
        D = hidden_size
        return input_size * 3 * D + 3 * D + D * 3 * D + 3 * D  # W_x, b_x, W_h, b_h

    def init_layer(
        self, rng: np.random.Generator, input_size: int, hidden_size: int, dtype: np.dtype
    ) -> Params:
        D = hidden_size
        p = {
            "W_x": init_uniform(rng, (input_size, 3 * D), D, dtype),
            "b_x": init_uniform(rng, (3 * D,), D, dtype),
            "W_h": init_uniform(rng, (D, 3 * D), D, dtype),
            "b_h": init_uniform(rng, (3 * D,), D, dtype),
        }
        if self.forecast.gate_init == "chrono":  # z_t = sigmoid(log u) keeps u / (1 + u) of h per step
            p["b_x"][D : 2 * D] = np.log(chrono_time_scales(rng, D, self.forecast.steps))
            p["b_h"][D : 2 * D] = 0.0
        return p

    def layer_forward(self, p: Params, x: np.ndarray, state: Any = None) -> tuple[np.ndarray, Any]:
        B, L, _ = x.shape
        D = p["W_h"].shape[0]
        x_tm = np.ascontiguousarray(x.transpose(1, 0, 2))  # (L, B, F)
        xp = linear(x_tm, p["W_x"], p["b_x"])  # (L, B, 3D) input projections, all steps
        xp[..., : 2 * D] += p["b_h"][: 2 * D]  # b_hr, b_hz add like input biases
        b_hn = p["b_h"][2 * D :]
        h_all = np.empty((L + 1, B, D), dtype=x.dtype)  # h_{-1} = state (or 0), h_0 .. h_{L-1}
        h_all[0] = 0.0 if state is None else state
        rz = xp[..., : 2 * D]  # (L, B, 2D) pre-activations, then gates, in place
        n = np.empty((L, B, D), dtype=x.dtype)
        hn = np.empty((L, B, D), dtype=x.dtype)  # h_{t-1} W_hn + b_hn
        for t in range(L):
            hp = h_all[t] @ p["W_h"]  # (B, 3D)
            rz[t] += hp[:, : 2 * D]
            rz[t] = sigmoid(rz[t])
            r, z = rz[t, :, :D], rz[t, :, D:]
            np.add(hp[:, 2 * D :], b_hn, out=hn[t])
            np.tanh(xp[t, :, 2 * D :] + r * hn[t], out=n[t])
            np.subtract(h_all[t], n[t], out=h_all[t + 1])  # h = n + z * (h_prev - n)
            h_all[t + 1] *= z
            h_all[t + 1] += n[t]
        return h_all[1:].transpose(1, 0, 2), (x_tm, h_all, rz, n, hn)

    def layer_backward(self, p: Params, dh: np.ndarray, cache: Any) -> tuple[np.ndarray, Params]:
        x_tm, h_all, rz, n, hn = cache
        h_prev = h_all[:-1]  # (L, B, D)
        L, B, D = h_prev.shape
        r, z = rz[..., :D], rz[..., D:]
        # local derivatives of every step at once, for the backward loop
        d_n = (1 - z) * (1 - n * n)  # dh/da_n through tanh
        d_z = (h_prev - n) * z * (1 - z)  # dh/da_z
        d_r = hn * r * (1 - r)  # da_n/da_r
        dh_tm = dh.transpose(1, 0, 2)  # (L, B, D)
        d_xp = np.empty((L, B, 3 * D), dtype=x_tm.dtype)  # dL/d(input projection)
        d_hp = np.empty((L, B, 3 * D), dtype=x_tm.dtype)  # dL/d(h_{t-1} W_h + b_h)
        W_h_T = p["W_h"].T
        carry = np.zeros((B, D), dtype=x_tm.dtype)  # dL/dh_t from step t+1
        for t in reversed(range(L)):
            g = carry + dh_tm[t]  # (B, D) total gradient of h_t
            da_r, da_z, da_n = d_xp[t, :, :D], d_xp[t, :, D : 2 * D], d_xp[t, :, 2 * D :]
            np.multiply(g, d_n[t], out=da_n)
            np.multiply(g, d_z[t], out=da_z)
            np.multiply(da_n, d_r[t], out=da_r)
            d_hp[t, :, : 2 * D] = d_xp[t, :, : 2 * D]
            np.multiply(da_n, r[t], out=d_hp[t, :, 2 * D :])
            carry = d_hp[t] @ W_h_T  # (B, D)
            carry += g * z[t]
        d_xp2, d_hp2 = d_xp.reshape(L * B, 3 * D), d_hp.reshape(L * B, 3 * D)
        dx = (d_xp2 @ p["W_x"].T).reshape(L, B, -1).transpose(1, 0, 2)  # (B, L, F)
        grads = {
            "W_x": x_tm.reshape(L * B, -1).T @ d_xp2,
            "b_x": d_xp2.sum(axis=0),
            "W_h": h_prev.reshape(L * B, D).T @ d_hp2,
            "b_h": d_hp2.sum(axis=0),
        }
        return dx, grads

    def layer_step(self, p: Params, x: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        """The cell once: x (B, F), h_{t-1} (B, D) -> h_t (B, D), as output and as the next state."""
        D = p["W_h"].shape[0]
        xp = linear(x, p["W_x"], p["b_x"])  # (B, 3D)
        hp = linear(state, p["W_h"], p["b_h"])  # (B, 3D)
        rz = sigmoid(xp[:, : 2 * D] + hp[:, : 2 * D])  # (B, 2D)
        r, z = rz[:, :D], rz[:, D:]
        n = np.tanh(xp[:, 2 * D :] + r * hp[:, 2 * D :])  # (B, D)
        h = n + z * (state - n)  # (B, D)
        return h, h
