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
            A_bar = exp(delta A),  B_bar = delta B (`discretization: delta_b`, the official code's)
                                or (exp(delta A) - 1) / A B (`zoh`, the exact zero-order hold)
    out   = (y * SiLU(z)) W_out              (B, L, D)

The selective scan (layers.py) has a hand-written backward that recomputes the states
chunk by chunk, so memory grows with L like the (B, L, ED) activations, not (B, L, ED, N).
Weights come from the NumPy twin (see base.py), initialised as in the paper's code.

A language model (`vocab_size`) embeds token ids with `embed.weight` (V, D). A block's state
is the last K-1 inputs of its convolution (B, K-1, ED) and the SSM state h (B, ED, N):
`forward_state` runs the convolution after them and the scan from h (`selective_scan_state`),
`step` shifts the convolution's window by one input and makes one SSM update.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from seqbench.models.numpy.mamba import Mamba as NumpyMamba
from seqbench.models.torch.base import TorchStack
from seqbench.models.torch.layers import (
    LOG2_E,
    CausalConv1d,
    Embedding,
    Linear,
    RMSNorm,
    conv_input,
    linear,
    rms_norm,
    selective_scan,
    selective_scan_state,
)


class MambaBlock(nn.Module):
    """One residual block: x (B, L, D) -> x + MambaBlock(RMSNorm(x)) (B, L, D)."""

    def __init__(
        self, D: int, expand: int, N: int, R: int, K: int, dtype: torch.dtype, discretization: str = "delta_b"
    ) -> None:
        super().__init__()
        ED = expand * D
        self.N, self.R, self.discretization = N, R, discretization
        self.norm = RMSNorm(D, dtype=dtype)
        self.in_proj = Linear(D, 2 * ED, bias=False, dtype=dtype)
        self.conv1d = CausalConv1d(ED, K, dtype=dtype)
        self.x_proj = Linear(ED, R + 2 * N, bias=False, dtype=dtype)
        self.dt_proj = Linear(R, ED, dtype=dtype)
        self.A_log = nn.Parameter(torch.empty(ED, N, dtype=dtype))
        self.D = nn.Parameter(torch.empty(ED, dtype=dtype))
        self.out_proj = Linear(ED, D, bias=False, dtype=dtype)

    def scan_inputs(
        self, x: torch.Tensor, conv_state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        """x (B, L, D) -> the selective scan's inputs u, pre_delta (B, L, ED), B, C (B, L, N), the gate z
        (B, L, ED) and x_in (B, L, ED), the convolution's input; `conv_state` holds the inputs before x."""
        R, N = self.R, self.N
        xn = self.norm(x)  # (B, L, D)
        W_in = self.in_proj.weight  # (D, 2ED): two products, so that z does not keep x_in alive
        ED = W_in.shape[1] // 2
        x_in, z = linear(xn, W_in[:, :ED]), linear(xn, W_in[:, ED:])  # (B, L, ED) each
        u = F.silu(self.conv1d(x_in, conv_state))  # (B, L, ED)
        delta_r, B, C = self.x_proj(u).split([R, N, N], dim=-1)  # (B, L, R), (B, L, N), (B, L, N)
        pre_delta = self.dt_proj(delta_r)  # (B, L, ED), delta = softplus(pre_delta)
        return u, pre_delta, B, C, z, x_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, pre_delta, B, C, z, _ = self.scan_inputs(x)
        A = -torch.exp(self.A_log)  # (ED, N)
        # y * SiLU(z), with softplus and the gate fused into the scan (memory only; see layers.py)
        gated = selective_scan(
            u, pre_delta, A, B, C, self.D, z=z, delta_softplus=True, discretization=self.discretization
        )  # (B, L, ED)
        return x + self.out_proj(gated)  # (B, L, D)

    # ---- the state: the convolution's last K-1 inputs and the SSM state ---------------------------

    def initial_state(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        ED, K = self.conv1d.weight.shape
        conv_state = self.D.new_zeros(batch_size, K - 1, ED)  # (B, K-1, ED)
        return conv_state, self.D.new_zeros(batch_size, ED, self.N)  # (B, ED, N)

    def forward_state(self, x: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        """x (B, L, D) after `state` -> the block's output (B, L, D) and the state after it; no autograd."""
        conv_state, h = state
        u, pre_delta, B, C, z, x_in = self.scan_inputs(x, conv_state)
        A = -torch.exp(self.A_log)  # (ED, N)
        gated, h = selective_scan_state(
            u, pre_delta, A, B, C, self.D, h0=h, z=z, delta_softplus=True, discretization=self.discretization
        )
        x_pad = conv_input(x_in, self.conv1d.weight.shape[1], conv_state)  # (B, K-1+L, ED)
        conv_state = x_pad[:, x_pad.shape[1] - conv_state.shape[1] :].clone()  # (B, K-1, ED)
        return x + self.out_proj(gated), (conv_state, h)

    def step(self, x: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        """One step: x (B, D), state ((B, K-1, ED), (B, ED, N)) -> x + MambaBlock(RMSNorm(x)), next state.

        The recurrence, as few tensor operations as it takes (a byte of generation is three blocks of
        them, each costing more in dispatch than in arithmetic): A log2(e) comes from `A_log2e`, and
        exp(delta A) is 2^(delta A log2 e); the state passed in is not written to.
        """
        R, N = self.R, self.N
        conv_state, h = state
        W_in = self.in_proj.weight  # (D, 2ED)
        ED = W_in.shape[1] // 2
        xz = rms_norm(x, self.norm.weight, self.norm.eps) @ W_in  # (B, 2ED) x_in, z
        window = torch.cat([conv_state, xz[:, None, :ED]], dim=1)  # (B, K, ED) the last K inputs
        pre_u = (window * self.conv1d.weight.t()).sum(1).add_(self.conv1d.bias)  # (B, ED)
        u = F.silu(pre_u, inplace=True)  # (B, ED)
        x_dbl = u @ self.x_proj.weight  # (B, R + 2N) delta_r, B, C
        delta = F.softplus(torch.addmm(self.dt_proj.bias, x_dbl[:, :R], self.dt_proj.weight))  # (B, ED)
        B, C = x_dbl[:, None, R : R + N], x_dbl[:, R + N :, None]  # (B, 1, N), (B, N, 1)
        if self.discretization == "zoh":
            A = -torch.exp(self.A_log)  # (ED, N)
            delta_A = delta[..., None] * A  # (B, ED, N)
            w = torch.expm1(delta_A).div_(A)  # (A_bar - 1) / A = B_bar / B
            h = torch.exp(delta_A).mul_(h).addcmul_(w, B * u[..., None])  # (B, ED, N) A_bar h + B_bar u
        else:
            h = torch.exp2(delta[..., None] * self.A_log2e()).mul_(h)  # (B, ED, N) A_bar h
            h.addcmul_((delta * u)[..., None], B)  # + B_bar u = delta B u
        y = torch.bmm(h, C)[..., 0].addcmul_(self.D, u)  # (B, ED) C h + D u
        out = torch.addmm(x, y.mul_(F.silu(xz[:, ED:])), self.out_proj.weight)  # (B, D) x + (y SiLU(z)) W_out
        return out, (window[:, 1:], h)

    def A_log2e(self) -> torch.Tensor:
        """A log2(e) = -exp(A_log) log2(e) (ED, N), computed again only when A_log has changed (its
        version counter moves with every in-place update: an optimiser step, a load)."""
        key = (self.A_log._version, self.A_log.data_ptr(), self.A_log.dtype)
        if getattr(self, "_A_log2e_key", None) != key:
            with torch.no_grad():
                self._A_log2e = -torch.exp(self.A_log) * LOG2_E
            self._A_log2e_key = key
        return self._A_log2e


class Mamba(TorchStack):
    """Embedding, `n_layers` residual Mamba blocks, a final RMSNorm and a linear head."""

    numpy_class = NumpyMamba
    options = NumpyMamba.options

    def build(self) -> None:
        D = self.hidden_size
        if self.is_lm:
            self.embed = Embedding(self.vocab_size, D, dtype=self.dtype)
        else:
            self.embed = Linear(self.step_size, D, dtype=self.dtype)
        self.layers = nn.ModuleList(
            MambaBlock(
                D,
                self.expand,
                self.state_size,
                self.dt_rank,
                self.conv_kernel,
                self.dtype,
                self.discretization,
            )
            for _ in range(self.n_layers)
        )
        self.build_head(D)
        self.norm_f = RMSNorm(D, dtype=self.dtype)

    def adapter(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, L, F), or a language model's ids (B, L) -> the embedding (B, L, D)."""
        return self.embed(x if self.is_lm else self.segments(x))

    def backbone(self, u: torch.Tensor, state: list | None = None) -> tuple[torch.Tensor, list | None]:
        """u (B, L, D) -> the final RMSNorm of the last block's output at every step (B, L, D), and the
        state after the last step when one is carried in."""
        h, new_state = super().backbone(u, state)  # (B, L, D)
        return self.norm_f(h), new_state

    def backbone_step(self, u: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        h, new_state = super().backbone_step(u, state)  # (B, D)
        return self.norm_f(h), new_state
