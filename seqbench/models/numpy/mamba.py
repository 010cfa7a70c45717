"""Mamba, the selective state-space model of Gu & Dao (2023, arXiv 2312.00752), in NumPy.

A window x (B, L, F) is embedded to (B, L, D) and goes through `n_layers` residual
blocks, x = x + MambaBlock(RMSNorm(x)), a final RMSNorm, and a linear head on the
last step. A MambaBlock (section 3.4, figure 3), with E = expand and N = state_size:

    x, z  = split(x W_in)                    (B, L, ED) each: the SSM path and the gate
    u     = SiLU(causal_depthwise_conv(x))   (B, L, ED)
    delta = softplus(u W_x[:, :R] W_dt + b_dt)    (B, L, ED)  input-dependent step, rank R
    B, C  = u W_x[:, R:R+N], u W_x[:, R+N:]       (B, L, N)   input-dependent (selection)
    y     = selective_scan(u, delta, A = -exp(A_log), B, C, D)   (B, L, ED)
            A_bar = exp(delta A),  B_bar = delta B (`discretization: delta_b`, the official code's)
                                or (exp(delta A) - 1) / A B (`zoh`, the exact zero-order hold)
    out   = (y * SiLU(z)) W_out              (B, L, D)

A language model (`vocab_size`) embeds token ids with `embed.weight` (V, D) instead of the
linear embedding, and its head reads every step. A block's state, for running a sequence
in chunks or a step at a time (section 3.5.2's recurrent mode), is the last K-1 inputs of
its causal convolution (B, K-1, ED) and the SSM state h (B, ED, N); `layer_step` shifts the
convolution's window by one input and makes one SSM update.

Initialisation as in the paper's code: A_log = log(1..N) (S4D-real), dt bias the inverse
softplus of a log-uniform step in [1e-3, 1e-1], D = 1, RMSNorm weights 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from seqbench.models.numpy.base import Params, RecurrentStack, State, StepFunction
from seqbench.models.numpy.forecasting import chrono_time_scales
from seqbench.models.numpy.layers import (
    RMS_EPS,
    causal_conv1d,
    causal_conv1d_backward,
    conv_input,
    init_uniform,
    linear,
    linear_backward,
    rms_norm,
    rms_norm_backward,
    selective_scan,
    selective_scan_backward,
    selective_scan_state,
    sigmoid,
    silu,
    silu_grad,
    softplus,
)

DT_MIN, DT_MAX, DT_FLOOR = 1e-3, 1e-1, 1e-4
DISCRETIZATIONS = ("delta_b", "zoh")  # B_bar = delta B (the official code) | the exact zero-order hold


@dataclass(frozen=True)
class MambaOptions:
    """A Mamba block's own options (the spec's model.mamba.*), with the paper code's defaults."""

    state_size: int = 16  # N
    expand: int = 2  # E
    conv_kernel: int = 4  # K
    dt_rank: int | str = "auto"  # R; "auto": ceil(D / 16)
    discretization: str = "delta_b"

    def rank(self, hidden_size: int) -> int:
        """R, the rank of delta's projection, for blocks of width D = `hidden_size`."""
        return math.ceil(hidden_size / 16) if self.dt_rank == "auto" else int(self.dt_rank)


class Mamba(RecurrentStack):
    """Embedding, `n_layers` residual Mamba blocks, a final RMSNorm and a linear head."""

    options = tuple(field.name for field in fields(MambaOptions))

    def configure(self, **options: Any) -> None:
        o = MambaOptions(**options)
        if o.discretization not in DISCRETIZATIONS:
            raise ValueError(f"discretization must be one of {DISCRETIZATIONS}, not {o.discretization!r}")
        self.state_size, self.expand, self.conv_kernel = o.state_size, o.expand, o.conv_kernel
        self.discretization = o.discretization
        self.dt_rank = o.rank(self.hidden_size)

    def init_final(self, rng: np.random.Generator) -> Params:
        return {"norm_f.weight": np.ones(self.hidden_size, dtype=self.dtype)}

    # ---- the embedding: linear over features, or of token ids ---------------------------------

    @property
    def adapter_size(self) -> int:
        return self.hidden_size

    @classmethod
    def final_weights(cls, hidden_size: int) -> int:
        return hidden_size  # norm_f.weight

    @classmethod
    def adapter_weights(cls, step_size: int, hidden_size: int, is_lm: bool) -> tuple[int, int]:
        if is_lm:
            return super().adapter_weights(step_size, hidden_size, is_lm)
        return step_size * hidden_size + hidden_size, hidden_size  # embed.weight, embed.bias

    @classmethod
    def layer_weights(cls, input_size: int, hidden_size: int, **options: Any) -> int:
        o = MambaOptions(**options)
        D, ED, N, K, R = hidden_size, o.expand * hidden_size, o.state_size, o.conv_kernel, o.rank(hidden_size)
        # norm, in_proj, conv1d weight and bias, x_proj, dt_proj weight and bias, A_log, D, out_proj
        return D + D * 2 * ED + ED * K + ED + ED * (R + 2 * N) + R * ED + ED + ED * N + ED + ED * D

    def init_adapter(
        self, rng: np.random.Generator, input_size: int, hidden_size: int, dtype: np.dtype
    ) -> Params:
        if self.is_lm:
            return super().init_adapter(rng, input_size, hidden_size, dtype)
        return {
            "embed.weight": init_uniform(rng, (input_size, hidden_size), input_size, dtype),
            "embed.bias": init_uniform(rng, (hidden_size,), input_size, dtype),
        }

    def adapter(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        if self.is_lm:
            return super().adapter(x)
        x = self.segments(x)  # (B, L / S, S F)
        return linear(x, self.params["embed.weight"], self.params["embed.bias"]), x  # (B, L / S, D)

    def adapter_backward(self, du: np.ndarray, cache: Any) -> Params:
        if self.is_lm:
            return super().adapter_backward(du, cache)
        _, dW, db = linear_backward(du, cache, self.params["embed.weight"], need_dx=False)
        return {"embed.weight": dW, "embed.bias": db}

    def init_layer(
        self, rng: np.random.Generator, input_size: int, hidden_size: int, dtype: np.dtype
    ) -> Params:
        D, ED, N, R, K = (
            hidden_size,
            self.expand * hidden_size,
            self.state_size,
            self.dt_rank,
            self.conv_kernel,
        )
        dt = np.exp(rng.uniform(size=ED) * (math.log(DT_MAX) - math.log(DT_MIN)) + math.log(DT_MIN))
        dt = np.maximum(dt, DT_FLOOR)
        if self.forecast.gate_init == "chrono":  # step 1 / u: A_bar = exp(-n / u), a memory of ~u / n steps
            dt = 1.0 / chrono_time_scales(rng, ED, self.forecast.steps)
        return {
            "norm.weight": np.ones(D, dtype=dtype),
            "in_proj.weight": init_uniform(rng, (D, 2 * ED), D, dtype),
            "conv1d.weight": init_uniform(rng, (ED, K), K, dtype),
            "conv1d.bias": init_uniform(rng, (ED,), K, dtype),
            "x_proj.weight": init_uniform(rng, (ED, R + 2 * N), ED, dtype),
            "dt_proj.weight": rng.uniform(-(R**-0.5), R**-0.5, size=(R, ED)).astype(dtype),
            "dt_proj.bias": (dt + np.log(-np.expm1(-dt))).astype(dtype),  # softplus^-1(dt)
            "A_log": np.log(np.tile(np.arange(1, N + 1, dtype=np.float64), (ED, 1))).astype(dtype),  # (ED, N)
            "D": np.ones(ED, dtype=dtype),
            "out_proj.weight": init_uniform(rng, (ED, D), ED, dtype),
        }

    # ---- one residual block: x + MambaBlock(RMSNorm(x)) ---------------------------------------

    def layer_forward(self, p: Params, x: np.ndarray, state: Any = None) -> tuple[np.ndarray, Any]:
        R, N = self.dt_rank, self.state_size
        conv_state, h0 = (None, None) if state is None else state  # (B, K-1, ED), (B, ED, N)
        xn, norm_cache = rms_norm(x, p["norm.weight"])  # (B, L, D)
        x_in, z = np.split(xn @ p["in_proj.weight"], 2, axis=-1)  # (B, L, ED) each
        pre_u = causal_conv1d(x_in, p["conv1d.weight"], p["conv1d.bias"], conv_state)  # (B, L, ED)
        u = silu(pre_u)
        x_dbl = u @ p["x_proj.weight"]  # (B, L, R + 2N)
        delta_r, B, C = x_dbl[..., :R], x_dbl[..., R : R + N], x_dbl[..., R + N :]
        pre_delta = linear(delta_r, p["dt_proj.weight"], p["dt_proj.bias"])  # (B, L, ED)
        delta = softplus(pre_delta)
        A = -np.exp(p["A_log"])  # (ED, N)
        y, scan_cache = selective_scan(u, delta, A, B, C, p["D"], h0, self.discretization)  # (B, L, ED)
        gated = y * silu(z)  # (B, L, ED)
        out = gated @ p["out_proj.weight"]  # (B, L, D)
        cache = (xn, norm_cache, x_in, conv_state, z, pre_u, u, delta_r, pre_delta, A, y, scan_cache, gated)
        return x + out, cache

    def layer_backward(self, p: Params, dh: np.ndarray, cache: Any) -> tuple[np.ndarray, Params]:
        xn, norm_cache, x_in, conv_state, z, pre_u, u, delta_r, pre_delta, A, y, scan_cache, gated = cache
        g: Params = {}
        d_gated, g["out_proj.weight"], _ = linear_backward(dh, gated, p["out_proj.weight"])
        dy, dz = d_gated * silu(z), d_gated * y * silu_grad(z)
        du, ddelta, dA, dB, dC, g["D"] = selective_scan_backward(dy, scan_cache)
        g["A_log"] = dA * A  # A = -exp(A_log)
        d_pre_delta = ddelta * sigmoid(pre_delta)  # softplus' = sigmoid
        d_delta_r, g["dt_proj.weight"], g["dt_proj.bias"] = linear_backward(
            d_pre_delta, delta_r, p["dt_proj.weight"]
        )
        d_x_dbl = np.concatenate([d_delta_r, dB, dC], axis=-1)  # (B, L, R + 2N)
        du_proj, g["x_proj.weight"], _ = linear_backward(d_x_dbl, u, p["x_proj.weight"])
        d_pre_u = (du + du_proj) * silu_grad(pre_u)
        dx_in, g["conv1d.weight"], g["conv1d.bias"] = causal_conv1d_backward(
            d_pre_u, x_in, p["conv1d.weight"], conv_state
        )
        dxn, g["in_proj.weight"], _ = linear_backward(
            np.concatenate([dx_in, dz], axis=-1), xn, p["in_proj.weight"]
        )
        dx, g["norm.weight"] = rms_norm_backward(dxn, norm_cache)
        return dh + dx, g

    # ---- a block's state: the convolution's last K-1 inputs and the SSM state -------------------

    def layer_initial_state(self, p: Params, batch_size: int) -> Any:
        ED, K = self.expand * self.hidden_size, self.conv_kernel
        conv_state = np.zeros((batch_size, K - 1, ED), dtype=self.dtype)  # (B, K-1, ED)
        return conv_state, np.zeros((batch_size, ED, self.state_size), dtype=self.dtype)  # (B, ED, N)

    def layer_state(self, h: np.ndarray, cache: Any) -> Any:
        x_in, conv_state, scan_cache = cache[2], cache[3], cache[11]
        x_pad = conv_input(x_in, self.conv_kernel, conv_state)  # (B, K-1+L, ED)
        return x_pad[:, x_pad.shape[1] - (self.conv_kernel - 1) :].copy(), selective_scan_state(scan_cache)

    def layer_step(self, p: Params, x: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        """One step: x (B, D), state ((B, K-1, ED), (B, ED, N)) -> x + MambaBlock(RMSNorm(x)), next state
        (`FoldedBlock.step`, its weights folded for this step alone; `step_function` folds them once)."""
        return FoldedBlock.of(p, self.dt_rank, self.discretization).step(x, state)

    # ---- the model: embedding, blocks, final norm, head -----------------------------------------

    def backbone(self, u: np.ndarray, state: Any = None) -> tuple[np.ndarray, list[Any], Any]:
        """u (B, L, D) -> the final RMSNorm of the last block's output at every step (B, L, D), caches,
        and the state after the last step when one is carried in."""
        h, caches, new_state = super().backbone(u, state)  # (B, L, D)
        out, norm_cache = rms_norm(h, self.params["norm_f.weight"])  # (B, L, D)
        return out, [*caches, norm_cache], new_state

    def backbone_backward(
        self, d_out: np.ndarray, caches: list[Any], shape: tuple[int, ...]
    ) -> tuple[Params, np.ndarray]:
        x_hat, r, weight = caches[-1]
        if d_out.ndim == 2:  # only the last step was read: the final norm's backward there only
            dh = np.zeros(shape, dtype=self.dtype)  # (B, L, D)
            dh[:, -1], d_norm = rms_norm_backward(d_out, (x_hat[:, -1], r[:, -1], weight))
        else:
            dh, d_norm = rms_norm_backward(d_out, (x_hat, r, weight))
        grads, du = super().backbone_backward(dh, caches[:-1], shape)
        return {"norm_f.weight": d_norm, **grads}, du

    def backbone_step(self, u: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        h, new_state = super().backbone_step(u, state)  # (B, D)
        return rms_norm(h, self.params["norm_f.weight"])[0], new_state

    def step_function(self) -> StepFunction:
        """`step` on the weights as they are now, folded once (`FoldedBlock`): the same function in fewer
        operations, for a run of steps such as a generation (one sequence's step costs more in calls
        than in arithmetic)."""
        p = self.params
        blocks = [
            FoldedBlock.of(self.layer_params(i), self.dt_rank, self.discretization)
            for i in range(self.n_layers)
        ]
        norm_f, W_head, b_head = p["norm_f.weight"], p["head.weight"], p["head.bias"]

        def step(x_t: np.ndarray, state: State) -> tuple[np.ndarray, State]:
            h = self.adapter(np.asarray(x_t)[:, None])[0][:, 0]  # (B, D)
            new_state = []
            for block, block_state in zip(blocks, state, strict=True):
                h, block_state = block.step(h, block_state)  # (B, D)
                new_state.append(block_state)
            return linear(rms_norm(h, norm_f)[0], W_head, b_head), new_state  # (B, O)

        return step


@dataclass(frozen=True)
class FoldedBlock:
    """A block's weights folded for `step`, with RMSNorm's weight in W_in and the rank-R step in W_dbc:
    RMSNorm(x) W_in = r (x W_in'),   r = 1 / sqrt(mean(x^2) + eps),   W_in' = diag(norm.weight) W_in
    [pre_delta, B, C] = u W_dbc + b_dbc,   W_dbc = [W_x[:, :R] W_dt, W_x[:, R:]],   b_dbc = [b_dt, 0]
    """

    W_in: np.ndarray  # (D, 2ED)
    conv_T: np.ndarray  # (K, ED) the convolution's taps, time first
    conv_bias: np.ndarray  # (ED,)
    W_dbc: np.ndarray  # (ED, ED + 2N)
    b_dbc: np.ndarray  # (ED + 2N,)
    A: np.ndarray  # (ED, N) -exp(A_log)
    D: np.ndarray  # (ED,)
    W_out: np.ndarray  # (ED, D)
    zoh: bool

    @classmethod
    def of(cls, p: Params, R: int, discretization: str) -> FoldedBlock:
        W_x = p["x_proj.weight"]  # (ED, R + 2N)
        b_dbc = np.concatenate([p["dt_proj.bias"], np.zeros(W_x.shape[1] - R, dtype=W_x.dtype)])
        return cls(
            W_in=p["norm.weight"][:, None] * p["in_proj.weight"],
            conv_T=np.ascontiguousarray(p["conv1d.weight"].T),
            conv_bias=p["conv1d.bias"],
            W_dbc=np.concatenate([W_x[:, :R] @ p["dt_proj.weight"], W_x[:, R:]], axis=1),
            b_dbc=b_dbc,
            A=-np.exp(p["A_log"]),
            D=p["D"],
            W_out=p["out_proj.weight"],
            zoh=discretization == "zoh",
        )

    def step(self, x: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        """`Mamba.layer_step` on these weights: x (B, D), state ((B, K-1, ED), (B, ED, N)) -> the block's
        output (B, D) and the next state; the state passed in is not written to."""
        conv_state, h = state
        ED, N = self.A.shape
        r = 1.0 / np.sqrt((x * x).sum(axis=1, keepdims=True) * (1.0 / x.shape[1]) + RMS_EPS)  # (B, 1)
        xz = (x @ self.W_in) * r  # (B, 2ED) x_in, z
        window = np.concatenate([conv_state, xz[:, None, :ED]], axis=1)  # (B, K, ED) the last K inputs
        u = silu((window * self.conv_T).sum(axis=1) + self.conv_bias)  # (B, ED)
        dbc = u @ self.W_dbc  # (B, ED + 2N) pre_delta, B, C
        dbc += self.b_dbc
        delta = softplus(dbc[:, :ED])  # (B, ED)
        B, C = dbc[:, None, ED : ED + N], dbc[:, ED + N :, None]  # (B, 1, N), (B, N, 1)
        delta_A = delta[..., None] * self.A  # (B, ED, N)
        A_bar = np.exp(delta_A)
        w = np.expm1(delta_A) / self.A if self.zoh else delta[..., None]  # B_bar / B
        h = A_bar * h + w * (B * u[..., None])  # (B, ED, N) A_bar h + B_bar u
        y = (h @ C)[..., 0] + self.D * u  # (B, ED) C h + D u
        return x + (y * silu(xz[:, ED:])) @ self.W_out, (window[:, 1:], h)
