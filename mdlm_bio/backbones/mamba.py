"""Mamba (S6) mixer, RMSNorm and BiMamba.

Parameter names follow mamba-ssm (in_proj, conv1d, x_proj, dt_proj, A_log, D,
out_proj) so that published Mamba and Caduceus weights map onto them one to one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .kernels import causal_conv1d_kernel, kernels_apply, selective_scan_kernel
from .recompute import ScanCore, recomputed
from .scan import selective_scan, selective_scan_torch
from .scan_state import selective_scan_from, states_after_blocks, step_sizes


def at_least_float32(x: Tensor) -> Tensor:
    """Residual streams and norms run in float32 (or float64 if asked) even under bf16 autocast."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def add_to_residual(residual: Tensor | None, hidden: Tensor) -> Tensor:
    """A residual stream in at least float32: the first layer's input starts it."""
    return at_least_float32(hidden) if residual is None else residual + hidden


class RMSNorm(nn.Module):
    """Root-mean-square norm with a weight only; computed in at least float32, returned in the weight's dtype."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        x = at_least_float32(x)
        normed = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return (normed * self.weight).to(self.weight.dtype)


class Mamba(nn.Module):
    """The selective-state-space mixer of Gu & Dao (2023): [B, L, D] -> [B, L, D], causal."""

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_min: float = 1e-3,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
    ) -> None:
        super().__init__()
        self.d_inner = expand * d_model
        self.d_state = d_state
        self.dt_rank = math.ceil(d_model / 16)
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=False)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(self.d_inner, 1))
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)
        self._init_time_step(dt_min, dt_max, dt_init_floor)

    def _init_time_step(self, dt_min: float, dt_max: float, floor: float) -> None:
        """Start step sizes log-uniform in [dt_min, dt_max], as Mamba does, so memory spans many scales."""
        nn.init.uniform_(self.dt_proj.weight, -self.dt_rank**-0.5, self.dt_rank**-0.5)
        with torch.no_grad():
            dt = torch.exp(torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
            dt = dt.clamp_min(floor)
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus

    def causal_conv(self, x: Tensor) -> Tensor:
        """SiLU of the depthwise causal convolution, [B, E, L] -> [B, E, L]: causal-conv1d's kernel where it
        applies (it supports widths 2 to 4), else nn.Conv1d padded on both sides with the look-ahead cut off."""
        kernel = causal_conv1d_kernel() if kernels_apply(x) and 2 <= self.conv1d.kernel_size[0] <= 4 else None
        if kernel is not None:
            return kernel(x.contiguous(), self.conv1d.weight.squeeze(1), self.conv1d.bias, activation="silu")
        return F.silu(self.conv1d(x)[..., : x.shape[-1]])

    def short_conv(self, extended: Tensor) -> Tensor:
        """The depthwise convolution of a short piece [B, E, d_conv - 1 + L'] with its look-back, as d_conv shifted
        multiply-adds: on the many short rows of block diffusion, several times faster than a grouped conv1d
        (whose backward dominated a training step on the CPU). Returned in the input's dtype, as the convolution
        gives it under autocast (the scan kernel wants its inputs in one dtype)."""
        width, length = self.conv1d.kernel_size[0], extended.shape[-1] - self.conv1d.kernel_size[0] + 1
        weight = self.conv1d.weight[:, 0, :, None]  # [E, d_conv, 1]
        out = self.conv1d.bias[:, None] + weight[:, 0] * extended[..., :length]
        for shift in range(1, width):
            out = out + weight[:, shift] * extended[..., shift : shift + length]
        return out.to(extended.dtype)

    def forward(self, hidden: Tensor) -> Tensor:
        if recomputes(self, hidden):
            return recomputed(self._project_and_mix, hidden, list(self.parameters()))
        return self._project_and_mix(hidden)

    def _project_and_mix(self, hidden: Tensor, core: ScanCore | None = None) -> Tensor:
        return self.out_proj(self.mix(self.in_proj(hidden), core))

    def mix(self, xz: Tensor, core: ScanCore | None = None, reverse: bool = False) -> Tensor:
        """From in_proj's output [B, L, 2E] to out_proj's input [B, L, E]: convolution, the selective scan
        (with `core` as its recurrence, see ScanReplay) and the gate; with `reverse`, run along the flipped
        sequence and return the result in the original order."""
        if reverse:
            xz = xz.flip(1)
        x, z = xz.transpose(1, 2).chunk(2, dim=1)
        x = self.causal_conv(x)
        scan_args = (x, *self.scan_inputs(x), self.D.float())
        scan_kwargs = dict(z=z, delta_bias=self.dt_proj.bias.float(), delta_softplus=True)
        if core is None:
            y = selective_scan(*scan_args, **scan_kwargs)
        else:
            y = selective_scan_torch(*scan_args, **scan_kwargs, core=core)
        return y.flip(2).transpose(1, 2) if reverse else y.transpose(1, 2)

    def scan_inputs(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The selective scan's delta (before its bias), A, B and C for the convolved inputs x [B, E, L], in
        mamba-ssm's layout."""
        dt, B, C = self.x_proj(x.transpose(1, 2)).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.linear(dt, self.dt_proj.weight).transpose(1, 2)
        return delta, -torch.exp(self.A_log.float()), B.transpose(1, 2).contiguous(), C.transpose(1, 2).contiguous()

    def mix_from_state(self, xz: Tensor, state: MixerState | None = None,
                       keep_state: bool = True) -> tuple[Tensor, MixerState | None]:
        """`mix` (forward direction) continued from what came before, also returning what comes after: `state`
        holds the convolution's last inputs and the scan's state after the previous position (None: the start of
        a sequence). A sequence mixed in pieces, each from the state the previous one left, is mixed as a whole:
        what block diffusion on Mamba carries instead of a KV cache. Without `keep_state` the state after is not
        computed (None; training's noisy blocks read outputs only). The torch convolution and scan serve here,
        for the short pieces it is used on."""
        x, z = xz.transpose(1, 2).chunk(2, dim=1)
        width = self.conv1d.kernel_size[0]
        before = x.new_zeros(x.shape[0], x.shape[1], width - 1) if state is None else state.conv.to(x.dtype)
        extended = torch.cat([before, x], dim=-1)  # zeros before a sequence start, as the causal padding is
        x = F.silu(self.short_conv(extended))
        delta, A, B, C = self.scan_inputs(x)
        options = dict(z=z, delta_bias=self.dt_proj.bias.float(), delta_softplus=True)
        if state is None:  # from zero: the plain scan
            h0 = None
            y = selective_scan(x, delta, A, B, C, self.D.float(), **options)
        else:
            h0 = state.scan
            y = selective_scan_from(x, delta, A, B, C, h0, self.D.float(), **options)
        if not keep_state:
            return y.transpose(1, 2), None
        steps = step_sizes(delta, self.dt_proj.bias.float(), True)
        after = states_after_blocks(x, steps, A, B, x.shape[-1], h0)[:, :, -1]
        return y.transpose(1, 2), MixerState(extended[..., extended.shape[-1] - (width - 1) :], after)

    def mix_with_boundaries(self, xz: Tensor, block: int) -> tuple[Tensor, MixerState]:
        """`mix` (forward direction) over a whole sequence [B, L, 2E], also returning the state after each whole
        block of `block` positions, as a MixerState of [B, J, E, d_conv - 1] and [B, J, E, N]: what block
        diffusion's clean sequence gives each noisy block. The scan itself takes any path (`selective_scan`); the
        block-end states come from `states_after_blocks`."""
        x, z = xz.transpose(1, 2).chunk(2, dim=1)
        width, blocks = self.conv1d.kernel_size[0], x.shape[-1] // block
        ends = torch.arange(1, blocks + 1, device=x.device)[:, None] * block
        # the last d_conv - 1 inputs before each block end (zeros before the start, as the causal padding is)
        conv = F.pad(x, (width - 1, 0))[:, :, ends + torch.arange(width - 1, device=x.device)].transpose(1, 2)
        x = self.causal_conv(x)
        delta, A, B, C = self.scan_inputs(x)
        y = selective_scan(x, delta, A, B, C, self.D.float(), z=z, delta_bias=self.dt_proj.bias.float(),
                           delta_softplus=True)
        whole = blocks * block
        steps = step_sizes(delta[..., :whole], self.dt_proj.bias.float(), True)
        scan = states_after_blocks(x[..., :whole], steps, A, B[..., :whole], block).transpose(1, 2)
        return y.transpose(1, 2), MixerState(conv, scan)


@dataclass(frozen=True)
class MixerState:
    """What a Mamba mixer carries past a position: the convolution's last d_conv - 1 inputs [B, E, d_conv - 1]
    and the selective scan's state [B, E, N]."""

    conv: Tensor
    scan: Tensor

    def rows(self, rows: Tensor | slice) -> MixerState:
        """The state of some rows of the batch."""
        return MixerState(self.conv[rows], self.scan[rows])


# Recompute a mixer's activations in backward once plain autograd would save this much for it: recomputing
# costs an extra pass over the cheap layers, which only pays where memory is the limit.
RECOMPUTE_FROM_BYTES = 32 * 2**20
SAVED_ACTIVATIONS = 12  # about this many [B, E, L] tensors per direction, saved by plain autograd


def recomputes(mamba: Mamba, hidden: Tensor) -> bool:
    """Whether training a mixer on `hidden` [B, L, D] recomputes its activations in backward (see recompute.py):
    on the torch scan (not mamba-ssm's kernel, which saves little), where they would weigh RECOMPUTE_FROM_BYTES.
    The memory estimate's small probe stays below that and measures plain autograd's activations: an upper bound
    of what recomputing training holds, backward's one recomputed layer included."""
    work = torch.promote_types(hidden.dtype, torch.float32)
    saved = SAVED_ACTIVATIONS * hidden.shape[0] * hidden.shape[1] * mamba.d_inner * work.itemsize
    fused_kernel = kernels_apply(hidden) and selective_scan_kernel() is not None
    return torch.is_grad_enabled() and not fused_kernel and saved >= RECOMPUTE_FROM_BYTES


class BiMamba(nn.Module):
    """Caduceus's bidirectional mixer: a forward Mamba plus one run on the flipped sequence, added.

    With weight tying the two directions share in_proj and out_proj (the bulk
    of the parameters) and keep their own convolution and SSM parameters. Both
    projections act per position and out_proj has no bias, so then one in_proj
    call serves both directions and one out_proj call takes their sum: half the
    projection work, and one saved copy of each projection's input.
    """

    def __init__(self, d_model: int, weight_tie: bool = True, **mamba_kwargs) -> None:
        super().__init__()
        self.mamba_fwd = Mamba(d_model, **mamba_kwargs)
        self.mamba_rev = Mamba(d_model, **mamba_kwargs)
        self.weight_tie = weight_tie
        if weight_tie:
            self.mamba_rev.in_proj = self.mamba_fwd.in_proj
            self.mamba_rev.out_proj = self.mamba_fwd.out_proj

    def forward(self, hidden: Tensor) -> Tensor:
        if recomputes(self.mamba_fwd, hidden):
            return recomputed(self._both_directions, hidden, list(self.parameters()))
        return self._both_directions(hidden)

    def _both_directions(self, hidden: Tensor, core: ScanCore | None = None) -> Tensor:
        if self.weight_tie:
            xz = self.mamba_fwd.in_proj(hidden)
            return self.mamba_fwd.out_proj(self.mamba_fwd.mix(xz, core) + self.mamba_rev.mix(xz, core, reverse=True))
        return (self.mamba_fwd._project_and_mix(hidden, core)
                + self.mamba_rev._project_and_mix(hidden.flip(1), core).flip(1))
