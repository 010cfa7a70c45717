"""Mamba, the selective state-space model of Gu & Dao (2023, arXiv 2312.00752), in PyTorch.

The same function as seqbench/models/numpy/mamba.py. A window x (B, L, F) is embedded
to (B, L, D) and goes through `n_layers` residual blocks, x = x + MambaBlock(RMSNorm(x)),
a final RMSNorm, and a linear head on the last step. A MambaBlock (section 3.4,
figure 3), with E = expand and N = state_size:

    x, z  = split(x W_in)                    (B, L, ED) each: the SSM path and the gate
    u     = SiLU(causal_depthwise_conv(x))   (B, L, ED)
    delta = softplus(u W_x[:, :R] W_dt + b_dt)    (B, L, ED)  input-dependent step, rank R
    B, C  = u W_x[:, R:R+N], u W_x[:, R+N:]       (B, L, N)   input-dependent (selection)
    y     = selective_scan(u, delta, A = -exp(A_log), B, C, D)   (B, L, ED)
    out   = (y * SiLU(z)) W_out              (B, L, D)

The selective scan (layers.py) has a hand-written backward that recomputes the states
chunk by chunk, so memory grows with L like the (B, L, ED) activations, not (B, L, ED, N).
Weights come from the NumPy twin (see base.py), initialised as in the paper's code.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from seqbench.models.numpy.mamba import Mamba as NumpyMamba
from seqbench.models.torch.base import TorchStack
from seqbench.models.torch.layers import CausalConv1d, Linear, RMSNorm, linear, selective_scan


class MambaBlock(nn.Module):
    """One residual block: x (B, L, D) -> x + MambaBlock(RMSNorm(x)) (B, L, D)."""

    def __init__(self, D: int, expand: int, N: int, R: int, K: int, dtype: torch.dtype) -> None:
        super().__init__()
        ED = expand * D
        self.N, self.R = N, R
        self.norm = RMSNorm(D, dtype=dtype)
        self.in_proj = Linear(D, 2 * ED, bias=False, dtype=dtype)
        self.conv1d = CausalConv1d(ED, K, dtype=dtype)
        self.x_proj = Linear(ED, R + 2 * N, bias=False, dtype=dtype)
        self.dt_proj = Linear(R, ED, dtype=dtype)
        self.A_log = nn.Parameter(torch.empty(ED, N, dtype=dtype))
        self.D = nn.Parameter(torch.empty(ED, dtype=dtype))
        self.out_proj = Linear(ED, D, bias=False, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        R, N = self.R, self.N
        xn = self.norm(x)  # (B, L, D)
        W_in = self.in_proj.weight  # (D, 2ED): two products, so that z does not keep x_in alive
        ED = W_in.shape[1] // 2
        x_in, z = linear(xn, W_in[:, :ED]), linear(xn, W_in[:, ED:])  # (B, L, ED) each
        u = F.silu(self.conv1d(x_in))  # (B, L, ED)
        delta_r, B, C = self.x_proj(u).split([R, N, N], dim=-1)  # (B, L, R), (B, L, N), (B, L, N)
        pre_delta = self.dt_proj(delta_r)  # (B, L, ED), delta = softplus(pre_delta)
        A = -torch.exp(self.A_log)  # (ED, N)
        # y * SiLU(z), with softplus and the gate fused into the scan (memory only; see layers.py)
        gated = selective_scan(u, pre_delta, A, B, C, self.D, z=z, delta_softplus=True)  # (B, L, ED)
        return x + self.out_proj(gated)  # (B, L, D)


class Mamba(TorchStack):
    """Embedding, `n_layers` residual Mamba blocks, a final RMSNorm and a linear head."""

    numpy_class = NumpyMamba
    options = NumpyMamba.options

    def build(self) -> None:
        D = self.hidden_size
        self.embed = Linear(self.input_size, D, dtype=self.dtype)
        self.layers = nn.ModuleList(
            MambaBlock(D, self.expand, self.state_size, self.dt_rank, self.conv_kernel, self.dtype)
            for _ in range(self.n_layers)
        )
        self.head = Linear(D, self.output_size, dtype=self.dtype)
        self.norm_f = RMSNorm(D, dtype=self.dtype)

    def sequence(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, L, F) -> the final RMSNorm of the last block's output at every step (B, L, D).

        The backbone of `forward` (TorchStack's), whose head reads its last step.
        """
        h = self.embed(x.to(self.dtype))  # (B, L, D)
        for block in self.layers:
            h = block(h)  # (B, L, D)
        return self.norm_f(h)  # (B, L, D)
