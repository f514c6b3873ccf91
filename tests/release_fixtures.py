"""Test helpers for the released-weights path: the reference's checkpoint layouts made from tiny random models
(renaming this engine's keys the other way; no reference code), and an independent x-flux ControlNet forward
written from the BFL FLUX equations, to check converted weights against."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from appearance_gen.convert_ckpt import (DOUBLE_BLOCK_NAMES, DOUBLE_BLOCK_NORMS, DOUBLE_BLOCK_QKV, EMBEDDER_NAMES,
                                         REFERENCE_BRANCHES)


def randomize(module: torch.nn.Module, seed: int = 0, std: float = 0.2) -> torch.nn.Module:
    """Every parameter random (also the zero-initialised output projections), so no path is trivially zero."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return module


def to_reference_controlnet_state(nets) -> dict[str, torch.Tensor]:
    """An ``AppearanceControlNets`` state in the reference's two-branch x-flux layout (``controlnet1.*``...)."""
    state = nets.state_dict()
    inverse = {v: k for k, v in {**EMBEDDER_NAMES, **DOUBLE_BLOCK_NAMES}.items()}
    norms = {v: k for k, v in DOUBLE_BLOCK_NORMS.items()}
    out = {}
    for prefix, (branch, _) in REFERENCE_BRANCHES.items():
        net = {k[len(f"controlnets.{branch}."):]: v for k, v in state.items() if k.startswith(f"controlnets.{branch}.")}
        for key, value in net.items():
            module, _, param = key.rpartition(".")
            if key.startswith("transformer_blocks."):
                _, index, rest = key.split(".", 2)
                if rest in norms:
                    out[f"{prefix}.double_blocks.{index}.{norms[rest]}"] = value
                elif rest.rpartition(".")[0] in inverse:
                    out[f"{prefix}.double_blocks.{index}.{inverse[rest.rpartition('.')[0]]}.{param}"] = value
            elif key.startswith("controlnet_blocks."):
                out[f"{prefix}.{key}"] = value
            elif module in inverse:
                out[f"{prefix}.{inverse[module]}.{param}"] = value
        for fused, parts in DOUBLE_BLOCK_QKV.items():
            for index in range(nets.config.num_layers):
                for param in ("weight", "bias"):
                    out[f"{prefix}.double_blocks.{index}.{fused}.{param}"] = torch.cat(
                        [net[f"transformer_blocks.{index}.{p}.{param}"] for p in parts])
        hint = nets.hint_blocks[branch]
        convs = [hint.conv_in, *hint.blocks, hint.conv_out]
        for i, conv in enumerate(convs):
            out[f"{prefix}.input_hint_block.{2 * i}.weight"] = conv.weight.detach().clone()
            out[f"{prefix}.input_hint_block.{2 * i}.bias"] = conv.bias.detach().clone()
    return {k: v.detach().clone().contiguous() for k, v in out.items()}


# --- an independent x-flux ControlNetFlux forward (BFL FLUX equations, plain torch) ---

def _timestep_embedding(t: torch.Tensor, dim: int = 256, max_period: float = 10000.0) -> torch.Tensor:
    t = 1000.0 * t
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def _linear(s, name, x):
    return F.linear(x, s[f"{name}.weight"], s[f"{name}.bias"])


def _mlp_embedder(s, name, x):
    return _linear(s, f"{name}.out_layer", F.silu(_linear(s, f"{name}.in_layer", x)))


def _rope_angles(ids: torch.Tensor, axes_dims) -> torch.Tensor:
    """(L, 3) positions -> (L, head_dim / 2) rotation angles, axis by axis."""
    parts = []
    for axis, dim in enumerate(axes_dims):
        omega = 1.0 / (10000 ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
        parts.append(ids[:, axis].double()[:, None] * omega[None])
    return torch.cat(parts, dim=-1)


def _apply_rope(x: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    cos, sin = torch.cos(angles).float(), torch.sin(angles).float()
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack([cos * x0 - sin * x1, sin * x0 + cos * x1], dim=-1).flatten(-2)


def _rms(x, scale):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * scale


def _double_block(s, p, img, txt, vec, angles, heads):
    def mod(name):
        return _linear(s, f"{p}.{name}.lin", F.silu(vec))[:, None, :].chunk(6, dim=-1)

    def qkv(stream, x, m):
        x = (1 + m[1]) * F.layer_norm(x, x.shape[-1:], eps=1e-6) + m[0]
        q, k, v = _linear(s, f"{p}.{stream}_attn.qkv", x).unflatten(-1, (3, heads, -1)).permute(2, 0, 3, 1, 4)
        return (_rms(q, s[f"{p}.{stream}_attn.norm.query_norm.scale"]),
                _rms(k, s[f"{p}.{stream}_attn.norm.key_norm.scale"]), v)

    img_m, txt_m = mod("img_mod"), mod("txt_mod")
    iq, ik, iv = qkv("img", img, img_m)
    tq, tk, tv = qkv("txt", txt, txt_m)
    q, k, v = (torch.cat(pair, dim=2) for pair in ((tq, iq), (tk, ik), (tv, iv)))
    attn = F.scaled_dot_product_attention(_apply_rope(q, angles), _apply_rope(k, angles), v)
    attn = attn.transpose(1, 2).flatten(2)
    txt_attn, img_attn = attn[:, :txt.shape[1]], attn[:, txt.shape[1]:]

    def update(stream, x, a, m):
        x = x + m[2] * _linear(s, f"{p}.{stream}_attn.proj", a)
        h = (1 + m[4]) * F.layer_norm(x, x.shape[-1:], eps=1e-6) + m[3]
        h = _linear(s, f"{p}.{stream}_mlp.2", F.gelu(_linear(s, f"{p}.{stream}_mlp.0", h), approximate="tanh"))
        return x + m[5] * h

    return update("img", img, img_attn, img_m), update("txt", txt, txt_attn, txt_m)


def xflux_controlnet_residuals(s: dict, prefix: str, img, img_ids, cond, txt, txt_ids, t, y, guidance,
                               axes_dims, heads: int) -> list[torch.Tensor]:
    """Residuals of the x-flux branch ``prefix`` (``controlnet1``...) of a reference-layout state ``s``."""
    hint = cond
    convs = sorted({int(k.split(".")[2]) for k in s if k.startswith(f"{prefix}.input_hint_block.")})
    for n, index in enumerate(convs):
        weight = s[f"{prefix}.input_hint_block.{index}.weight"]
        stride = 2 if 0 < n < len(convs) - 1 and n % 2 == 0 else 1
        hint = F.conv2d(hint, weight, s[f"{prefix}.input_hint_block.{index}.bias"], stride=stride, padding=1)
        if n < len(convs) - 1:
            hint = F.silu(hint)
    b, c, h, w = hint.shape
    hint = hint.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)
    x = _linear(s, f"{prefix}.img_in", img) + _linear(s, f"{prefix}.pos_embed_input", hint)
    vec = (_mlp_embedder(s, f"{prefix}.time_in", _timestep_embedding(t))
           + _mlp_embedder(s, f"{prefix}.guidance_in", _timestep_embedding(guidance))
           + _mlp_embedder(s, f"{prefix}.vector_in", y))
    text = _linear(s, f"{prefix}.txt_in", txt)
    angles = _rope_angles(torch.cat([txt_ids, img_ids]), axes_dims)
    blocks = sorted({int(k.split(".")[2]) for k in s if k.startswith(f"{prefix}.double_blocks.")})
    out = []
    for i in blocks:
        x, text = _double_block(s, f"{prefix}.double_blocks.{i}", x, text, vec, angles, heads)
        out.append(_linear(s, f"{prefix}.controlnet_blocks.{i}", x))
    return out
