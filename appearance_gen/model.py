"""The appearance stage's two ControlNet branches ("physical": depth + normal, "semantic": keypoints + seg mask).

Each branch is a diffusers ``FluxControlNetModel`` (InstantX style: its ``controlnet_x_embedder`` reads packed
64-channel tokens) fed by its own pixel-space hint block: a ``ControlNetConditioningEmbedding`` whose input has
``3 * len(maps)`` channels (6 for two maps) and whose stride-2 convs downsample as much as the VAE; its output is
packed 2x2 like FLUX latents. This equals diffusers' XLabs ``input_hint_block`` path with the input channel count
the reference needs (diffusers 0.42 hard-codes 3). Both branches' double-block residuals are scaled per branch,
summed and handed to the base ``FluxTransformer2DModel``.
"""
from __future__ import annotations

import logging
from typing import Mapping, Sequence

import torch
from torch import nn

from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.controlnets.controlnet import ControlNetConditioningEmbedding
from diffusers.models.controlnets.controlnet_flux import FluxControlNetModel
from diffusers.models.modeling_utils import ModelMixin
from diffusers.pipelines.flux.pipeline_flux import FluxPipeline

from data_tools.maps.bundle import check_condition_names
from data_tools.errors import DataError

logger = logging.getLogger(__name__)

DEFAULT_BRANCHES = {"physical": ["depth", "normal"], "semantic": ["hand_keypoints", "seg_mask"]}
# Keys of a FluxTransformer2DModel config that a branch copies.
_SHARED_KEYS = ("in_channels", "joint_attention_dim", "pooled_projection_dim", "guidance_embeds", "axes_dims_rope",
                "attention_head_dim", "num_attention_heads")


def vae_downscale(vae_config) -> int:
    """Spatial downscale of a diffusers VAE, derived from its config as diffusers' FLUX and CogVideoX pipelines
    derive ``vae_scale_factor`` (one 2x downsample per block but the last): 8 for the released VAEs."""
    return 2 ** (len(vae_config["block_out_channels"]) - 1)


def hint_block_channels(downscale: int, width: int = 16) -> list[int]:
    """``block_out_channels`` of a hint block that downscales ``downscale``x (a power of two): one stride-2 conv
    per entry after the first, so 8x gives the reference's four entries (8 convs with conv_in / conv_out)."""
    steps = int(downscale).bit_length() - 1
    if downscale < 1 or 2 ** steps != downscale:
        raise DataError(None, f"VAE downscale {downscale} is not a power of two")
    return [width] * (steps + 1)


def pack_tokens(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, h, w)`` -> ``(B, h/2 * w/2, 4C)`` in FLUX's latent packing order."""
    b, c, h, w = x.shape
    if h % 2 or w % 2:
        raise DataError(None, f"feature map {h}x{w} cannot be packed 2x2 (image size must be a multiple of 16)")
    return FluxPipeline._pack_latents(x, b, c, h, w)


class AppearanceControlNets(ModelMixin, ConfigMixin):
    """Named ControlNet branches, each reading the concatenation of its condition maps.

    ``branches`` maps a branch name to condition names (order = channel order); ``conditioning_scales`` are the
    default per-branch scales; ``blocks_repeat`` adds residual ``i % n`` to base double block ``i`` (x-flux style)
    instead of diffusers' interval mapping.
    """

    @register_to_config
    def __init__(self, branches: Mapping[str, Sequence[str]] | None = None,
                 conditioning_scales: Mapping[str, float] | None = None, in_channels: int = 64,
                 num_layers: int = 2, num_single_layers: int = 0, attention_head_dim: int = 128,
                 num_attention_heads: int = 24, joint_attention_dim: int = 4096, pooled_projection_dim: int = 768,
                 guidance_embeds: bool = True, axes_dims_rope: Sequence[int] = (16, 56, 56),
                 hint_channels: int = 16, hint_block_out_channels: Sequence[int] = (16, 16, 16, 16),
                 blocks_repeat: bool = True):
        super().__init__()
        branches = {k: list(v) for k, v in (branches or DEFAULT_BRANCHES).items()}
        if not branches:
            raise DataError(None, "at least one ControlNet branch is needed")
        for name, maps in branches.items():
            if not maps:
                raise DataError(None, f"branch '{name}' has no condition maps")
            check_condition_names(maps)
        if hint_channels * 4 != in_channels:
            raise DataError(None, f"hint_channels * 4 must equal in_channels ({hint_channels} * 4 != {in_channels})")
        self.branches = branches
        self.hint_blocks = nn.ModuleDict({
            name: ControlNetConditioningEmbedding(conditioning_embedding_channels=hint_channels,
                                                  conditioning_channels=3 * len(maps),
                                                  block_out_channels=tuple(hint_block_out_channels))
            for name, maps in branches.items()})
        self.controlnets = nn.ModuleDict({
            name: FluxControlNetModel(
                patch_size=1, in_channels=in_channels, num_layers=num_layers, num_single_layers=num_single_layers,
                attention_head_dim=attention_head_dim, num_attention_heads=num_attention_heads,
                joint_attention_dim=joint_attention_dim, pooled_projection_dim=pooled_projection_dim,
                guidance_embeds=guidance_embeds, axes_dims_rope=list(axes_dims_rope))
            for name in branches})

    @property
    def hint_downscale(self) -> int:
        """Pixel downscale of the hint blocks (must equal the VAE's)."""
        return 2 ** (len(self.config.hint_block_out_channels) - 1)

    @classmethod
    def from_transformer(cls, transformer, branches: Mapping[str, Sequence[str]] | None = None,
                         conditioning_scales: Mapping[str, float] | None = None, num_layers: int = 2,
                         num_single_layers: int = 0, hint_block_out_channels: Sequence[int] = (16, 16, 16, 16),
                         blocks_repeat: bool = True, load_weights_from_transformer: bool = True) -> "AppearanceControlNets":
        """New branches initialised as diffusers does for a new FLUX ControlNet (``FluxControlNetModel.
        from_transformer``: embedders and the first blocks copied from the base, zero output projections).

        The token embedder of the condition is re-initialised to a random (non-zero) Linear: the hint block's last
        conv is already zero, and zeroing both would leave the condition path without gradient.
        """
        tcfg = transformer.config
        kwargs = {k: tcfg[k] for k in _SHARED_KEYS}
        kwargs["axes_dims_rope"] = list(kwargs["axes_dims_rope"])
        model = cls(branches=branches, conditioning_scales=conditioning_scales, num_layers=num_layers,
                    num_single_layers=num_single_layers, hint_channels=tcfg["in_channels"] // 4,
                    hint_block_out_channels=hint_block_out_channels, blocks_repeat=blocks_repeat, **kwargs)
        for name in model.branches:
            branch = FluxControlNetModel.from_transformer(
                transformer, num_layers=num_layers, num_single_layers=num_single_layers,
                attention_head_dim=tcfg["attention_head_dim"], num_attention_heads=tcfg["num_attention_heads"],
                load_weights_from_transformer=load_weights_from_transformer)
            branch.controlnet_x_embedder.reset_parameters()
            model.controlnets[name] = branch
        return model

    def unused_parameters(self) -> list[nn.Parameter]:
        """Parameters that never reach the residuals: with no single blocks, the text-stream output of the last
        double block (``attn.to_add_out``, ``ff_context``). Freeze them for DDP/DeepSpeed."""
        if self.config.num_single_layers or not self.config.num_layers:
            return []
        out = []
        for net in self.controlnets.values():
            last = net.transformer_blocks[-1]
            out += list(last.attn.to_add_out.parameters()) + list(last.ff_context.parameters())
        return out

    def set_trainable(self) -> "AppearanceControlNets":
        """Every parameter trainable except ``unused_parameters`` (frozen: DDP/DeepSpeed need a gradient for each
        trainable one). Returns the model."""
        self.requires_grad_(True)
        for param in self.unused_parameters():
            param.requires_grad_(False)
        return self

    def scales(self, overrides: Mapping[str, float] | None = None) -> dict[str, float]:
        """Per-branch conditioning scales: the config's (default 1.0) updated by ``overrides``."""
        scales = {name: 1.0 for name in self.branches}
        scales.update(self.config.conditioning_scales or {})
        for name, value in (overrides or {}).items():
            if name not in self.branches:
                raise DataError(None, f"unknown ControlNet branch {name!r}; branches: {list(self.branches)}")
            scales[name] = float(value)
        return scales

    def branch_input(self, name: str, maps: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Concatenate the branch's maps (each ``(B, 3, H, W)`` in [-1, 1]) on channels."""
        missing = [m for m in self.branches[name] if m not in maps]
        if missing:
            raise DataError(None, f"branch '{name}' needs conditions {missing}; got {list(maps)}")
        return torch.cat([maps[m] for m in self.branches[name]], dim=1)

    def forward(self, hidden_states: torch.Tensor, conditions: Mapping[str, torch.Tensor], timestep: torch.Tensor,
                encoder_hidden_states: torch.Tensor, pooled_projections: torch.Tensor, txt_ids: torch.Tensor,
                img_ids: torch.Tensor, guidance: torch.Tensor | None = None,
                conditioning_scales: Mapping[str, float] | None = None) -> list[torch.Tensor] | None:
        """Summed, scaled double-block residuals of all branches (None when every scale is 0).

        ``conditions`` maps branch name -> ``(B, 3 * len(maps), H, W)`` pixel tensor (see ``branch_input``);
        ``timestep`` is in [0, 1] as FLUX transformers expect.
        """
        total = None
        dtype = self.controlnets[next(iter(self.branches))].x_embedder.weight.dtype
        cast = lambda x: None if x is None else x.to(dtype)  # noqa: E731  (branches may differ from the base dtype)
        hidden, text, pooled = cast(hidden_states), cast(encoder_hidden_states), cast(pooled_projections)
        for name, scale in self.scales(conditioning_scales).items():
            if scale == 0:
                continue
            cond = conditions[name].to(device=hidden_states.device, dtype=dtype)
            tokens = pack_tokens(self.hint_blocks[name](cond))
            if tokens.shape[1] != hidden_states.shape[1]:
                raise DataError(None, f"branch '{name}': condition gives {tokens.shape[1]} tokens but the latent has "
                                      f"{hidden_states.shape[1]} (hint downscale {self.hint_downscale} must match the VAE)")
            samples, _ = self.controlnets[name](
                hidden_states=hidden, controlnet_cond=tokens, conditioning_scale=scale, timestep=cast(timestep),
                guidance=cast(guidance), pooled_projections=pooled, encoder_hidden_states=text,
                txt_ids=txt_ids, img_ids=img_ids, return_dict=False)
            samples = [x.to(hidden_states.dtype) for x in samples]
            total = samples if total is None else [a + b for a, b in zip(total, samples)]
        return total
