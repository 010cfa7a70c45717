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

from typing import NamedTuple

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
    selective_scan,
    selective_scan_state,
)


class StepWeights(NamedTuple):
    """A block's weights folded for `MambaBlock.step` (see there), detached copies."""

    W_in: torch.Tensor  # (D, 2ED) diag(norm.weight) W_in
    conv_T: torch.Tensor  # (K, ED) the convolution's taps, time first
    conv_bias: torch.Tensor  # (ED,)
    W_dbc: torch.Tensor  # (ED, ED + 2N) [W_x[:, :R] W_dt, W_x[:, R:]]
    b_dbc: torch.Tensor  # (ED + 2N,) [b_dt, 0]
    A: torch.Tensor  # (ED, N) -exp(A_log)
    A_log2e: torch.Tensor  # (ED, N) A log2(e)
    D: torch.Tensor  # (ED,)
    W_out: torch.Tensor  # (ED, D)


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

        The recurrence in as few tensor operations as it takes (a byte of generation is three blocks of
        them, each costing more in dispatch than in arithmetic), on weights folded once (`StepWeights`):
            RMSNorm(x) W_in = r (x W_in'),  r = 1 / sqrt(mean(x^2) + eps),  W_in' = diag(norm.weight) W_in
            [pre_delta, B, C] = u W_dbc + b_dbc,  W_dbc = [W_x[:, :R] W_dt, W_x[:, R:]]
        and exp(delta A) = 2^(delta A log2 e). The state passed in is not written to.
        """
        w = self.step_weights()
        conv_state, h = state
        Bsz, K1, ED = conv_state.shape
        N = self.N
        r = x.square().sum(1, keepdim=True).mul_(1 / x.shape[1]).add_(self.norm.eps).rsqrt_()  # (B, 1)
        xz = (x @ w.W_in).mul_(r)  # (B, 2ED) x_in, z
        x_in, z = xz.split(ED, dim=1)  # (B, ED) each
        window = torch.cat([conv_state, x_in.unsqueeze(1)], dim=1)  # (B, K, ED) the last K inputs
        u = F.silu((window * w.conv_T).sum(1).add_(w.conv_bias), inplace=True)  # (B, ED)
        pre_delta, B, C = torch.addmm(w.b_dbc, u, w.W_dbc).split([ED, N, N], dim=1)  # (B, ED), (B, N) x 2
        delta = F.softplus(pre_delta)  # (B, ED)
        B, C = B.unsqueeze(1), C.unsqueeze(2)  # (B, 1, N), (B, N, 1)
        if self.discretization == "zoh":
            delta_A = delta.unsqueeze(2) * w.A  # (B, ED, N)
            B_bar_B = torch.expm1(delta_A).div_(w.A)  # (A_bar - 1) / A = B_bar / B
            h = (
                torch.exp(delta_A).mul_(h).addcmul_(B_bar_B, B * u.unsqueeze(2))
            )  # (B, ED, N) A_bar h + B_bar u
        else:
            h = torch.exp2(delta.unsqueeze(2) * w.A_log2e).mul_(h)  # (B, ED, N) A_bar h
            h.addcmul_((delta * u).unsqueeze(2), B)  # + B_bar u = delta B u
        y = torch.bmm(h, C).view(Bsz, ED).addcmul_(w.D, u)  # (B, ED) C h + D u
        out = torch.addmm(x, y.mul_(F.silu(z)), w.W_out)  # (B, D) x + (y SiLU(z)) W_out
        return out, (window.narrow(1, 1, K1), h)

    def step_weights(self) -> StepWeights:
        """The block's weights as `step` reads them, folded again only when a weight has changed (an
        optimiser step, a load: each moves its tensor's version counter)."""
        params = self.__dict__.get("_step_params") or self.__dict__.setdefault(
            "_step_params", list(self.parameters())
        )
        key = [(p._version, p.data_ptr(), p.dtype) for p in params]
        if getattr(self, "_step_key", None) != key:
            with torch.no_grad():
                R = self.R
                W_x, dt = self.x_proj.weight, self.dt_proj  # (ED, R + 2N), W_dt (R, ED)
                A = -torch.exp(self.A_log)  # (ED, N)
                self._step_weights = StepWeights(
                    W_in=self.norm.weight[:, None] * self.in_proj.weight,  # (D, 2ED)
                    conv_T=self.conv1d.weight.t().contiguous(),  # (K, ED)
                    conv_bias=self.conv1d.bias.clone(),  # (ED,)
                    W_dbc=torch.cat([W_x[:, :R] @ dt.weight, W_x[:, R:]], dim=1),  # (ED, ED + 2N)
                    b_dbc=torch.cat([dt.bias, dt.bias.new_zeros(W_x.shape[1] - R)]),  # (ED + 2N,)
                    A=A,
                    A_log2e=A * LOG2_E,  # (ED, N)
                    D=self.D.clone(),  # (ED,)
                    W_out=self.out_proj.weight.clone(),  # (ED, D)
                )
            self._step_key = key
        return self._step_weights


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
