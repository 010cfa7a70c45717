"""The classic GRU cell (Cho et al., 2014), in the gate order and form of torch.nn.GRU.

The same function as seqbench/models/numpy/gru.py:

    r_t = sigmoid(x_t W_xr + b_xr + h_{t-1} W_hr + b_hr)      reset gate
    z_t = sigmoid(x_t W_xz + b_xz + h_{t-1} W_hz + b_hz)      update gate
    n_t = tanh(x_t W_xn + b_xn + r_t * (h_{t-1} W_hn + b_hn))  candidate
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

W_x (F, 3D) and W_h (D, 3D) hold the r, z, n blocks side by side (torch.nn.GRU's
weight_ih_l0 is W_x transposed, weight_hh_l0 is W_h transposed).

The gates depend on h_{t-1}, so time is a loop, here inside a custom autograd Function
whose backward is the NumPy one: everything that does not need the loop is outside
it (the input projections of all steps, the local derivatives of every gate, and the
weight gradients: one matrix product each, where autograd would make one per step).
Inside, arrays are time-major (L, B, .) and each step's slices come from `unbind`.
A layer's state is its last h (B, D): `forward_state` starts the same loop from it, and
`step` is the cell once.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from seqbench.models.numpy.gru import GRU as NumpyGRU
from seqbench.models.torch.base import TorchStack


def gru_loop(
    x: torch.Tensor, W_x: torch.Tensor, b_x: torch.Tensor, W_h: torch.Tensor, b_h: torch.Tensor, h_all
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The GRU over time: x (L, B, F) and h_all (L+1, B, D) holding h_{-1} in row 0 -> h_all filled in,
    and the gates and pieces backward needs: xp (L, B, 3D) (r, z in its first 2D columns), hn, n."""
    L, B, F = x.shape
    D = W_h.shape[0]
    xp = torch.addmm(b_x, x.reshape(L * B, F), W_x).view(L, B, 3 * D)  # (L, B, 3D) all steps
    xp[..., : 2 * D] += b_h[: 2 * D]  # b_hr, b_hz add like input biases
    b_hn = b_h[2 * D :]
    hn = x.new_empty(L, B, D)  # h_{t-1} W_hn + b_hn
    n = x.new_empty(L, B, D)  # candidates
    hp = x.new_empty(B, 3 * D)  # h_{t-1} W_h, one step
    h_s = h_all.unbind(0)
    for t, (xp_t, hn_t, n_t) in enumerate(zip(xp.unbind(0), hn.unbind(0), n.unbind(0), strict=True)):
        torch.mm(h_s[t], W_h, out=hp)  # (B, 3D)
        rz = xp_t[:, : 2 * D].add_(hp[:, : 2 * D]).sigmoid_()  # (B, 2D) gates, in place
        torch.add(hp[:, 2 * D :], b_hn, out=hn_t)
        torch.addcmul(xp_t[:, 2 * D :], rz[:, :D], hn_t, out=n_t).tanh_()  # (B, D)
        torch.lerp(n_t, h_s[t], rz[:, D:], out=h_s[t + 1])  # n + z * (h_{t-1} - n)
    return xp, hn, n


class _GRULayer(torch.autograd.Function):
    """x (L, B, F) time-major, W_x (F, 3D), b_x (3D,), W_h (D, 3D), b_h (3D,) -> h (L, B, D)."""

    @staticmethod
    def forward(ctx, x, W_x, b_x, W_h, b_h):
        L, B, _ = x.shape
        h_all = x.new_zeros(L + 1, B, W_h.shape[0])  # h_{-1} = 0, h_0 .. h_{L-1}
        xp, hn, n = gru_loop(x, W_x, b_x, W_h, b_h, h_all)
        ctx.save_for_backward(x, W_x, W_h, h_all, xp, hn, n)
        return h_all[1:]

    @staticmethod
    @once_differentiable
    def backward(ctx, dh):
        x, W_x, W_h, h_all, xp, hn, n = ctx.saved_tensors
        L, B, F = x.shape
        D = W_h.shape[0]
        h_prev = h_all[:-1]  # (L, B, D)
        r, z = xp[..., :D], xp[..., D : 2 * D]  # (L, B, D) gates, saved in xp's memory
        # local derivatives of every step at once
        d_n = (1 - z) * (1 - n * n)  # dh/da_n through tanh
        d_z = (h_prev - n) * z * (1 - z)  # dh/da_z
        d_r = hn * r * (1 - r)  # da_n/da_r
        d_xp = x.new_empty(L, B, 3 * D)  # dL/d(input projection)
        d_hp = x.new_empty(L, B, 3 * D)  # dL/d(h_{t-1} W_h + b_h)
        W_h_T = W_h.t()
        carry = torch.zeros_like(h_prev[0])  # dL/dh_t from step t+1
        g = torch.empty_like(carry)
        steps = zip(dh.unbind(0), d_xp.unbind(0), d_hp.unbind(0), d_n, d_z, d_r, r, z, strict=True)
        for dh_t, d_xp_t, d_hp_t, d_n_t, d_z_t, d_r_t, r_t, z_t in reversed(list(steps)):
            torch.add(carry, dh_t, out=g)  # (B, D) total gradient of h_t
            da_n = torch.mul(g, d_n_t, out=d_xp_t[:, 2 * D :])
            torch.mul(g, d_z_t, out=d_hp_t[:, D : 2 * D])
            torch.mul(da_n, d_r_t, out=d_hp_t[:, :D])
            torch.mul(da_n, r_t, out=d_hp_t[:, 2 * D :])
            carry = torch.addmm(g * z_t, d_hp_t, W_h_T)  # (B, D)
        d_xp[..., : 2 * D] = d_hp[..., : 2 * D]
        d_xp2, d_hp2 = d_xp.view(L * B, 3 * D), d_hp.view(L * B, 3 * D)
        dx = (d_xp2 @ W_x.t()).view(L, B, F) if ctx.needs_input_grad[0] else None
        dW_x = x.reshape(L * B, F).t() @ d_xp2
        dW_h = h_prev.reshape(L * B, D).t() @ d_hp2
        return dx, dW_x, d_xp2.sum(0), dW_h, d_hp2.sum(0)


class GRULayer(nn.Module):
    """One GRU layer: x (B, L, F) -> h (B, L, D)."""

    def __init__(self, input_size: int, hidden_size: int, dtype: torch.dtype) -> None:
        super().__init__()
        D = hidden_size
        self.W_x = nn.Parameter(torch.empty(input_size, 3 * D, dtype=dtype))
        self.b_x = nn.Parameter(torch.empty(3 * D, dtype=dtype))
        self.W_h = nn.Parameter(torch.empty(D, 3 * D, dtype=dtype))
        self.b_h = nn.Parameter(torch.empty(3 * D, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = _GRULayer.apply(x.transpose(0, 1), self.W_x, self.b_x, self.W_h, self.b_h)  # (L, B, D)
        return h.transpose(0, 1)  # (B, L, D)

    def initial_state(self, batch_size: int) -> torch.Tensor:
        return self.W_h.new_zeros(batch_size, self.W_h.shape[0])  # h (B, D)

    def forward_state(self, x: torch.Tensor, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, L, F) from the state h0 (B, D) -> h (B, L, D) and the last state (B, D); no autograd."""
        B, L, _ = x.shape
        h_all = x.new_empty(L + 1, B, self.W_h.shape[0])  # h_{-1} = h0, h_0 .. h_{L-1}
        h_all[0] = h0
        gru_loop(x.transpose(0, 1), self.W_x, self.b_x, self.W_h, self.b_h, h_all)
        return h_all[1:].transpose(0, 1), h_all[-1].clone()

    def step(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The cell once: x (B, F), h_{t-1} (B, D) -> h_t (B, D), as output and as the next state."""
        D = self.W_h.shape[0]
        xp = torch.addmm(self.b_x, x, self.W_x)  # (B, 3D)
        hp = torch.addmm(self.b_h, h, self.W_h)  # (B, 3D)
        rz = torch.sigmoid(xp[:, : 2 * D] + hp[:, : 2 * D])  # (B, 2D)
        n = torch.tanh(torch.addcmul(xp[:, 2 * D :], rz[:, :D], hp[:, 2 * D :]))  # (B, D)
        h = torch.lerp(n, h, rz[:, D:])  # n + z (h_{t-1} - n)
        return h, h


class GRU(TorchStack):
    """A stack of GRU layers with a linear head on the last state."""

    numpy_class = NumpyGRU

    def make_layer(self, input_size: int, hidden_size: int) -> nn.Module:
        return GRULayer(input_size, hidden_size, self.dtype)
