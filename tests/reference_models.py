"""Independent, functional re-derivations of published architectures, written from their equations.

They share no code with mdlm_bio.backbones, so agreement checks both the
layer arithmetic and the checkpoint key names at once.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def naive_selective_scan(u, delta, A, B, C, D, z, delta_bias):
    """Mamba's recurrence position by position: h = exp(dA) h + d B u; y = C.h + D u, gated by silu(z)."""
    delta = F.softplus(delta + delta_bias[:, None])
    state = torch.zeros(u.shape[0], u.shape[1], A.shape[1], dtype=u.dtype)
    outputs = []
    for pos in range(u.shape[-1]):
        step = delta[..., pos, None]
        state = torch.exp(step * A) * state + step * B[:, None, :, pos] * u[..., pos, None]
        outputs.append((state * C[:, None, :, pos]).sum(-1) + D * u[..., pos])
    return torch.stack(outputs, dim=-1) * F.silu(z)


def rms_norm(x: Tensor, weight: Tensor, eps: float = 1e-5) -> Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def reference_mamba(sd: dict[str, Tensor], prefix: str, x: Tensor, shared_prefix: str | None = None) -> Tensor:
    """mamba_simple.Mamba on x [B, L, D]; in/out projections may come from a tied twin (shared_prefix)."""
    shared = shared_prefix or prefix
    length, inner = x.shape[1], sd[prefix + "D"].shape[0]
    rank = sd[prefix + "dt_proj.weight"].shape[1]
    state = sd[prefix + "A_log"].shape[1]
    xz = x @ sd[shared + "in_proj.weight"].T
    u, z = xz[..., :inner], xz[..., inner:]
    kernel = sd[prefix + "conv1d.weight"]
    u = F.conv1d(u.transpose(1, 2), kernel, sd[prefix + "conv1d.bias"], padding=kernel.shape[-1] - 1, groups=inner)
    u = F.silu(u[..., :length])
    projected = u.transpose(1, 2) @ sd[prefix + "x_proj.weight"].T
    dt, b, c = projected[..., :rank], projected[..., rank : rank + state], projected[..., rank + state :]
    delta = (dt @ sd[prefix + "dt_proj.weight"].T).transpose(1, 2)
    y = naive_selective_scan(
        u, delta, -torch.exp(sd[prefix + "A_log"]), b.transpose(1, 2), c.transpose(1, 2),
        sd[prefix + "D"], z.transpose(1, 2), sd[prefix + "dt_proj.bias"],
    )
    return y.transpose(1, 2) @ sd[shared + "out_proj.weight"].T


def _bimamba(sd: dict[str, Tensor], prefix: str, x: Tensor) -> Tensor:
    forward = reference_mamba(sd, prefix + "mamba_fwd.", x)
    tied = None if prefix + "mamba_rev.in_proj.weight" in sd else prefix + "mamba_fwd."
    return forward + reference_mamba(sd, prefix + "mamba_rev.", x.flip(1), tied).flip(1)


def reference_caduceus(sd: dict[str, Tensor], tokens: Tensor, complement_map: Tensor) -> Tensor:
    """CaduceusForMaskedLM logits from an HF-layout state dict (fused add-norm path, as released)."""
    prefix = "caduceus.backbone."
    rcps = prefix + "embeddings.word_embeddings.embedding.weight" in sd
    flip_lc = lambda h: h.flip(1, 2)  # noqa: E731
    n_layer = len({k.split(".")[3] for k in sd if k.startswith(prefix + "layers.")})
    if rcps:
        table = sd[prefix + "embeddings.word_embeddings.embedding.weight"]
        hidden = torch.cat([table[tokens], flip_lc(table[complement_map[tokens.flip(1)]])], dim=-1)
    else:
        table = sd[prefix + "embeddings.word_embeddings.weight"]
        hidden = table[tokens]
    d_model, residual = table.shape[1], None
    for i in range(n_layer):
        layer = f"{prefix}layers.{i}."
        norm = sd[layer + "norm.weight"]
        if rcps:
            total = hidden if residual is None else hidden + residual
            first, second = total[..., :d_model], total[..., d_model:]
            residual = torch.cat([second, first], dim=-1)
            mixer = layer + "mixer.submodule."
            hidden = torch.cat(
                [
                    _bimamba(sd, mixer, rms_norm(second, norm)),
                    flip_lc(_bimamba(sd, mixer, rms_norm(flip_lc(first), norm))),
                ],
                dim=-1,
            )
        else:
            residual = hidden if residual is None else hidden + residual
            hidden = _bimamba(sd, layer + "mixer.", rms_norm(residual, norm))
    total, final = hidden + residual, sd[prefix + "norm_f.weight"]
    if not rcps:
        return rms_norm(total, final) @ table.T
    first = rms_norm(total[..., :d_model], final)
    second = flip_lc(rms_norm(flip_lc(total[..., d_model:]), final))
    return first @ table.T + second.flip(-1) @ table[complement_map].T


def reference_mdlm_dit(sd: dict[str, Tensor], tokens: Tensor, sigma: Tensor) -> Tensor:
    """MDLM's DiT forward from a `backbone.*` state dict, with explicit softmax attention."""
    p = lambda name: sd["backbone." + name]  # noqa: E731
    head_dim = 2 * p("rotary_emb.inv_freq").numel()
    batch, length = tokens.shape
    hidden_size = p("vocab_embed.embedding").shape[1]
    heads = hidden_size // head_dim
    half = 128
    angles = sigma[:, None] * torch.exp(-math.log(10_000) * torch.arange(half) / half)[None]
    features = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
    c = F.linear(F.silu(F.linear(features, p("sigma_map.mlp.0.weight"), p("sigma_map.mlp.0.bias"))),
                 p("sigma_map.mlp.2.weight"), p("sigma_map.mlp.2.bias"))
    c = F.silu(c)
    inv_freq = 1.0 / 10_000 ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    rot = torch.arange(length, dtype=torch.float64)[:, None] * inv_freq[None]
    cos = torch.cat([rot.cos(), rot.cos()], -1)[:, None, :].to(sd["backbone.vocab_embed.embedding"].dtype)
    sin = torch.cat([rot.sin(), rot.sin()], -1)[:, None, :].to(cos.dtype)

    def rope(v: Tensor) -> Tensor:  # [B, L, heads, d]
        return v * cos + torch.cat([-v[..., head_dim // 2 :], v[..., : head_dim // 2]], dim=-1) * sin

    def norm(x: Tensor, name: str) -> Tensor:
        return F.layer_norm(x, x.shape[-1:]) * p(name)

    x = p("vocab_embed.embedding")[tokens]
    n_blocks = len({k.split(".")[2] for k in sd if k.startswith("backbone.blocks.")})
    for i in range(n_blocks):
        b = f"blocks.{i}."
        mod = F.linear(c, p(b + "adaLN_modulation.weight"), p(b + "adaLN_modulation.bias"))[:, None]
        shift1, scale1, gate1, shift2, scale2, gate2 = mod.chunk(6, dim=-1)
        qkv = (norm(x, b + "norm1.weight") * (1 + scale1) + shift1) @ p(b + "attn_qkv.weight").T
        q, k, v = qkv.view(batch, length, 3, heads, head_dim).unbind(2)
        scores = torch.einsum("blhd,bmhd->bhlm", rope(q), rope(k)) / math.sqrt(head_dim)
        out = torch.einsum("bhlm,bmhd->blhd", scores.softmax(-1), v).reshape(batch, length, hidden_size)
        x = x + gate1 * (out @ p(b + "attn_out.weight").T)
        h = norm(x, b + "norm2.weight") * (1 + scale2) + shift2
        h = F.linear(F.gelu(F.linear(h, p(b + "mlp.0.weight"), p(b + "mlp.0.bias")), approximate="tanh"),
                     p(b + "mlp.2.weight"), p(b + "mlp.2.bias"))
        x = x + gate2 * h
    final = F.linear(c, p("output_layer.adaLN_modulation.weight"), p("output_layer.adaLN_modulation.bias"))
    shift, scale = final[:, None].chunk(2, -1)
    h = norm(x, "output_layer.norm_final.weight") * (1 + scale) + shift
    return F.linear(h, p("output_layer.linear.weight"), p("output_layer.linear.bias"))
