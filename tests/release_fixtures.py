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


# --- a fake "release": tiny random weights in the layouts the user downloads ---

def tiny_t5_tokenizer():
    """A saveable T5 tokenizer (tokenizer.json) over printable characters, built in memory."""
    import string

    from transformers import T5Tokenizer

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -1.0)]
    vocab += [(c, -2.0) for c in string.printable if not c.isspace()]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def _t5_encoder(tokenizer, d_model: int, seed: int):
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    return T5EncoderModel(T5Config(vocab_size=len(tokenizer), d_model=d_model, d_kv=8, d_ff=2 * d_model, num_layers=1,
                                   num_heads=2, decoder_start_token_id=0))


def make_fake_flux(folder, seed: int = 0):
    """A tiny FLUX.1-dev-like diffusers folder (transformer, vae, both text encoders and tokenizers, scheduler);
    returns its transformer."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from appearance_gen.components import tiny_components
    from appearance_gen.config import load_appearance_config

    cfg = load_appearance_config("configs/appearance/tiny.yaml").model
    cfg.tiny.seed = seed
    comps = tiny_components(cfg.tiny, cfg.scheduler)
    tokenizer_2 = tiny_t5_tokenizer()
    text_encoder_2 = _t5_encoder(tokenizer_2, cfg.tiny.transformer["joint_attention_dim"], seed)
    parts = {"transformer": comps.transformer, "vae": comps.vae, "text_encoder": comps.text_encoder,
             "tokenizer": comps.tokenizer, "text_encoder_2": text_encoder_2, "tokenizer_2": tokenizer_2,
             "scheduler": FlowMatchEulerDiscreteScheduler(**cfg.scheduler)}
    for name, part in parts.items():
        part.save_pretrained(str(folder / name))
    return comps.transformer


def make_fake_cogvideox(folder, seed: int = 0, num_frames: int = 9, height: int = 32, width: int = 48):
    """A tiny CogVideoX-I2V-like diffusers folder; returns its transformer. Like CogVideoX-5b-I2V it has learned
    positional embeddings, so it runs at its own size (32x48, 9 frames) only and inputs are resampled to it."""
    from diffusers import CogVideoXDPMScheduler

    from motion_gen.components import COGVIDEOX_SCHEDULER, tiny_base_transformer, tiny_vae
    from motion_gen.config import TinyModelConfig

    tiny = TinyModelConfig(seed=seed, learned_positional_embeddings=True)
    tokenizer = tiny_t5_tokenizer()
    base = tiny_base_transformer(tiny, num_frames, height, width)
    parts = {"transformer": base, "vae": tiny_vae(tiny), "tokenizer": tokenizer,
             "text_encoder": _t5_encoder(tokenizer, tiny.text_embed_dim, seed),
             "scheduler": CogVideoXDPMScheduler(**COGVIDEOX_SCHEDULER)}
    for name, part in parts.items():
        part.save_pretrained(str(folder / name))
    return base


def save_reference_motion_transformer(base, folder, num_blocks: int = 1, seed: int = 0):
    """The motion transformer as the reference class saves it (its key names, five streams, num_tracking_blocks)."""
    import json

    from safetensors.torch import save_file

    from motion_gen.convert_ckpt import REFERENCE_CONDITION_ORDER, REFERENCE_KEYS
    from motion_gen.model import CogVideoXConditionTransformer

    ours = CogVideoXConditionTransformer.from_base(base, list(REFERENCE_CONDITION_ORDER), num_condition_blocks=num_blocks)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in ours.branch_parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    back = {v: k for k, v in REFERENCE_KEYS.items()}
    state = {}
    for key, value in ours.state_dict().items():
        prefix = key.split(".")[0]
        state[back.get(prefix, prefix) + key[len(prefix):]] = value.contiguous()
    folder.mkdir(parents=True)
    save_file(state, folder / "diffusion_pytorch_model.safetensors")
    config = {k: v for k, v in ours.config.items() if k not in ("condition_names", "num_condition_blocks",
                                                                 "replace_condition_stream") and not k.startswith("_")}
    (folder / "config.json").write_text(json.dumps({"_class_name": "CogVideoXTransformer3DModelCombination",
                                                    "num_tracking_blocks": num_blocks, **config}))
    return ours


def make_fake_release(root) -> dict:
    """``root/{PAM,FLUX.1-dev,CogVideoX-5b-I2V}`` with tiny random weights in the downloaded layouts."""
    from appearance_gen.model import AppearanceControlNets

    flux_base = make_fake_flux(root / "FLUX.1-dev")
    cog_base = make_fake_cogvideox(root / "CogVideoX-5b-I2V")
    pam = root / "PAM"
    nets = AppearanceControlNets.from_transformer(flux_base, hint_block_out_channels=(4, 4, 4, 4))
    randomize(nets, seed=3, std=0.05)
    (pam / "appearance_gen").mkdir(parents=True)
    torch.save(to_reference_controlnet_state(nets), pam / "appearance_gen" / "controlnet.bin")
    save_reference_motion_transformer(cog_base, pam / "motion_gen" / "transformer")
    return {"pam": str(pam), "flux": str(root / "FLUX.1-dev"), "cogvideox": str(root / "CogVideoX-5b-I2V")}
