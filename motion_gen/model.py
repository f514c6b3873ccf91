"""CogVideoX transformer with the fused condition branch of PAM's motion stage.

Each configured condition (a latent video concatenated on channels with the latent of its own first frame)
goes through the base model's patch embedding. The K condition token streams are concatenated on the feature
axis, the video tokens (repeated K times) are added, and a zero-initialised ``Linear(K*D, D)`` gives one
condition stream. That stream runs through copies of the first N base blocks (sharing the main path's text
stream, time embedding and rotary embedding); after block ``i`` a zero-initialised ``Linear(D, D)`` projects it
and the result is added to the main hidden states. With ``replace_condition_stream`` (the reference behaviour)
the projection also replaces the stream fed to the next copy block. At initialisation the output equals the
base model's exactly.
"""
from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Iterable, Mapping

import torch
from diffusers import CogVideoXTransformer3DModel
from diffusers.configuration_utils import register_to_config
from diffusers.models.embeddings import get_3d_rotary_pos_embed
from diffusers.models.modeling_outputs import Transformer2DModelOutput
from diffusers.models.transformers.cogvideox_transformer_3d import CogVideoXBlock
from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import get_resize_crop_region_for_grid
from torch import nn

from data_tools.maps.bundle import check_condition_names

logger = logging.getLogger(__name__)
BRANCH_PREFIXES = ("condition_embed", "condition_blocks", "condition_projections")


class CogVideoXConditionTransformer(CogVideoXTransformer3DModel):
    """``CogVideoXTransformer3DModel`` plus the condition branch (config: ``condition_names``,
    ``num_condition_blocks``, ``replace_condition_stream``; the rest is the base model's config)."""

    _repeated_blocks = ("CogVideoXBlock",)  # regional compilation (compile_repeated_blocks): base and branch blocks

    @register_to_config
    def __init__(
        self,
        condition_names: tuple[str, ...] | list[str] = ("hand_keypoints", "depth", "seg_mask"),
        num_condition_blocks: int = 12,
        replace_condition_stream: bool = True,
        num_attention_heads: int = 30,
        attention_head_dim: int = 64,
        in_channels: int = 16,
        out_channels: int | None = 16,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        time_embed_dim: int = 512,
        ofs_embed_dim: int | None = None,
        text_embed_dim: int = 4096,
        num_layers: int = 30,
        dropout: float = 0.0,
        attention_bias: bool = True,
        sample_width: int = 90,
        sample_height: int = 60,
        sample_frames: int = 49,
        patch_size: int = 2,
        patch_size_t: int | None = None,
        temporal_compression_ratio: int = 4,
        max_text_seq_length: int = 226,
        activation_fn: str = "gelu-approximate",
        timestep_activation_fn: str = "silu",
        norm_elementwise_affine: bool = True,
        norm_eps: float = 1e-5,
        spatial_interpolation_scale: float = 1.875,
        temporal_interpolation_scale: float = 1.0,
        use_rotary_positional_embeddings: bool = False,
        use_learned_positional_embeddings: bool = False,
        patch_bias: bool = True,
    ):
        super().__init__(
            num_attention_heads=num_attention_heads, attention_head_dim=attention_head_dim, in_channels=in_channels,
            out_channels=out_channels, flip_sin_to_cos=flip_sin_to_cos, freq_shift=freq_shift,
            time_embed_dim=time_embed_dim, ofs_embed_dim=ofs_embed_dim, text_embed_dim=text_embed_dim,
            num_layers=num_layers, dropout=dropout, attention_bias=attention_bias, sample_width=sample_width,
            sample_height=sample_height, sample_frames=sample_frames, patch_size=patch_size, patch_size_t=patch_size_t,
            temporal_compression_ratio=temporal_compression_ratio, max_text_seq_length=max_text_seq_length,
            activation_fn=activation_fn, timestep_activation_fn=timestep_activation_fn,
            norm_elementwise_affine=norm_elementwise_affine, norm_eps=norm_eps,
            spatial_interpolation_scale=spatial_interpolation_scale,
            temporal_interpolation_scale=temporal_interpolation_scale,
            use_rotary_positional_embeddings=use_rotary_positional_embeddings,
            use_learned_positional_embeddings=use_learned_positional_embeddings, patch_bias=patch_bias,
        )
        names = check_condition_names(condition_names)
        if len(set(names)) != len(names):
            raise ValueError(f"condition_names has duplicates: {names}")
        if not 0 <= num_condition_blocks <= num_layers:
            raise ValueError(f"num_condition_blocks={num_condition_blocks} must be in [0, num_layers={num_layers}]")
        self.register_to_config(condition_names=list(names))
        dim = num_attention_heads * attention_head_dim
        blocks = num_condition_blocks if names else 0
        self.condition_embed = nn.Linear(len(names) * dim, dim) if names else None
        self.condition_blocks = nn.ModuleList([
            CogVideoXBlock(dim=dim, num_attention_heads=num_attention_heads, attention_head_dim=attention_head_dim,
                           time_embed_dim=time_embed_dim, dropout=dropout, activation_fn=activation_fn,
                           attention_bias=attention_bias, norm_elementwise_affine=norm_elementwise_affine,
                           norm_eps=norm_eps)
            for _ in range(blocks)])
        self.condition_projections = nn.ModuleList([nn.Linear(dim, dim) for _ in range(blocks)])
        self.zero_init_branch_linears()
        self._bound_conditions: dict[str, torch.Tensor] | None = None

    # ------------------------------------------------------------------ building
    @classmethod
    def from_base(cls, base: CogVideoXTransformer3DModel | str | os.PathLike,
                  condition_names: Iterable[str] = ("hand_keypoints", "depth", "seg_mask"),
                  num_condition_blocks: int = 12, replace_condition_stream: bool = True,
                  torch_dtype: torch.dtype | None = None) -> "CogVideoXConditionTransformer":
        """Build from a base CogVideoX(-I2V) transformer (a model or a diffusers folder): the first
        ``num_condition_blocks`` blocks are copied into the branch and the new linears are zero. The base weights
        are not copied: the new model shares their storage (no second 5B copy in memory), so do not train a base
        model object passed in here through another reference."""
        from accelerate import init_empty_weights

        if not isinstance(base, CogVideoXTransformer3DModel):
            path = os.fspath(base)
            if os.path.isdir(os.path.join(path, "transformer")):
                path = os.path.join(path, "transformer")
            base = CogVideoXTransformer3DModel.from_pretrained(path, torch_dtype=torch_dtype)
        config = {k: v for k, v in base.config.items() if not k.startswith("_")}
        config.update(condition_names=list(condition_names), num_condition_blocks=num_condition_blocks,
                      replace_condition_stream=replace_condition_stream)
        with init_empty_weights():
            model = cls.from_config(config)
        state = base.state_dict()
        missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
        if unexpected or any(not k.startswith(BRANCH_PREFIXES) for k in missing):
            raise ValueError(f"base weights do not fit: unexpected {unexpected[:5]}, missing {missing[:5]}")
        for i, block in enumerate(model.condition_blocks):
            block.load_state_dict({k: v.detach().clone() for k, v in base.transformer_blocks[i].state_dict().items()},
                                  assign=True)
        dtype, device = next(base.parameters()).dtype, next(base.parameters()).device
        model._materialise_branch_linears(device, dtype)
        model.set_trainable(train_base=False)
        return model

    def to_base(self) -> CogVideoXTransformer3DModel:
        """The base part (branch dropped) as a plain ``CogVideoXTransformer3DModel`` holding copies of its weights,
        on this model's device and dtype: e.g. a model trained without conditions, saved as the "pretrained"
        transformer other sets start from."""
        names = set(self.config) - {"condition_names", "num_condition_blocks", "replace_condition_stream"}
        param = next(self.parameters())
        with torch.device(param.device):
            base = CogVideoXTransformer3DModel.from_config({k: self.config[k] for k in names if not k.startswith("_")})
        state = {k: v for k, v in self.state_dict().items() if not k.startswith(BRANCH_PREFIXES)}
        base.to(dtype=param.dtype).load_state_dict(state, strict=True)  # copies into the new parameters
        return base

    def _materialise_branch_linears(self, device, dtype) -> None:
        linears = ([self.condition_embed] if self.condition_embed is not None else []) + list(self.condition_projections)
        for linear in linears:
            linear.weight = nn.Parameter(torch.zeros(linear.out_features, linear.in_features, device=device, dtype=dtype))
            linear.bias = nn.Parameter(torch.zeros(linear.out_features, device=device, dtype=dtype))

    def zero_init_branch_linears(self) -> None:
        """Zero the fusion and per-block projection linears (the output then equals the base model's)."""
        for name, param in self.named_parameters():
            if name.startswith(("condition_embed", "condition_projections")) and param.device.type != "meta":
                nn.init.zeros_(param)

    def branch_parameters(self) -> list[nn.Parameter]:
        """Parameters of the condition branch (fusion linear, copied blocks, projections)."""
        return [p for n, p in self.named_parameters() if n.startswith(BRANCH_PREFIXES)]

    def set_trainable(self, train_base: bool = False) -> None:
        """Freeze the base model and unfreeze the condition branch (or unfreeze everything)."""
        self.requires_grad_(train_base)
        for p in self.branch_parameters():
            p.requires_grad_(True)

    # ------------------------------------------------------------------ conditions
    @contextlib.contextmanager
    def bind_conditions(self, conditions: Mapping[str, torch.Tensor]):
        """Within the block, forward calls without ``conditions`` use these (repeated to the call's batch, e.g.
        for the unconditional half of classifier-free guidance). Used by the pipeline."""
        previous = self._bound_conditions
        self._bound_conditions = dict(conditions)
        try:
            yield self
        finally:
            self._bound_conditions = previous

    def _condition_stream(self, video_tokens: torch.Tensor, text: torch.Tensor,
                          conditions: Mapping[str, torch.Tensor]) -> torch.Tensor:
        names = self.config.condition_names
        missing = [n for n in names if n not in conditions]
        if missing:
            raise ValueError(f"missing condition latents {missing}; the model needs {names}")
        batch, text_len = video_tokens.shape[0], text.shape[1]
        streams = []
        for name in names:
            cond = conditions[name].to(device=video_tokens.device, dtype=video_tokens.dtype)
            cond = repeat_to_batch(cond, batch, f"condition '{name}'")
            tokens = self.embedding_dropout(self.patch_embed(text, cond))[:, text_len:]
            if tokens.shape != video_tokens.shape:
                raise ValueError(f"condition '{name}' gives tokens {tuple(tokens.shape)}, video {tuple(video_tokens.shape)}")
            streams.append(tokens)
        fused = torch.cat(streams, dim=-1) + video_tokens.repeat(1, 1, len(names))
        return self.condition_embed(fused)

    def _block(self, block, hidden, text, emb, rotary, attention_kwargs):
        if torch.is_grad_enabled() and self.gradient_checkpointing:
            return self._gradient_checkpointing_func(block, hidden, text, emb, rotary, attention_kwargs)
        return block(hidden_states=hidden, encoder_hidden_states=text, temb=emb, image_rotary_emb=rotary,
                     attention_kwargs=attention_kwargs)

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        timestep: int | float | torch.LongTensor,
        conditions: Mapping[str, torch.Tensor] | None = None,
        timestep_cond: torch.Tensor | None = None,
        ofs: int | float | torch.LongTensor | None = None,
        image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        attention_kwargs: dict[str, Any] | None = None,
        return_dict: bool = True,
    ):
        """As ``CogVideoXTransformer3DModel.forward``; ``conditions`` maps each configured condition name to its
        latent ``(B, F, 2C, h, w)`` (condition latent + padded first-frame latent, like the I2V input)."""
        if conditions is None:
            conditions = self._bound_conditions
        has_branch = self.condition_embed is not None
        if has_branch and conditions is None:
            raise ValueError(f"this model needs condition latents for {self.config.condition_names}")
        batch_size, num_frames, _, height, width = hidden_states.shape

        t_emb = self.time_proj(timestep).to(dtype=hidden_states.dtype)
        emb = self.time_embedding(t_emb, timestep_cond)
        if self.ofs_embedding is not None:
            emb = emb + self.ofs_embedding(self.ofs_proj(ofs).to(dtype=hidden_states.dtype))

        text_len = encoder_hidden_states.shape[1]
        tokens = self.embedding_dropout(self.patch_embed(encoder_hidden_states, hidden_states))
        text, hidden = tokens[:, :text_len], tokens[:, text_len:]
        stream = self._condition_stream(hidden, encoder_hidden_states, conditions) if has_branch else None

        for i, block in enumerate(self.transformer_blocks):
            hidden, text = self._block(block, hidden, text, emb, image_rotary_emb, attention_kwargs)
            if stream is not None and i < len(self.condition_blocks):
                branch_out, _ = self._block(self.condition_blocks[i], stream, text, emb, image_rotary_emb,
                                            attention_kwargs)
                projected = self.condition_projections[i](branch_out)
                hidden = hidden + projected
                stream = projected if self.config.replace_condition_stream else branch_out

        hidden = self.norm_final(hidden)
        hidden = self.proj_out(self.norm_out(hidden, temb=emb))
        p, p_t = self.config.patch_size, self.config.patch_size_t
        if p_t is None:
            output = hidden.reshape(batch_size, num_frames, height // p, width // p, -1, p, p)
            output = output.permute(0, 1, 4, 2, 5, 3, 6).flatten(5, 6).flatten(3, 4)
        else:
            output = hidden.reshape(batch_size, (num_frames + p_t - 1) // p_t, height // p, width // p, -1, p_t, p, p)
            output = output.permute(0, 1, 5, 4, 2, 6, 3, 7).flatten(6, 7).flatten(4, 5).flatten(1, 2)
        if not return_dict:
            return (output,)
        return Transformer2DModelOutput(sample=output)


def repeat_to_batch(tensor: torch.Tensor, batch: int, what: str = "tensor") -> torch.Tensor:
    """``tensor`` tiled along dim 0 to ``batch`` rows (a batch of 2 becomes a, b, a, b); ValueError naming ``what``
    when its batch does not divide ``batch``."""
    if tensor.shape[0] == batch:
        return tensor
    if batch % tensor.shape[0]:
        raise ValueError(f"{what} batch {tensor.shape[0]} does not divide {batch}")
    return tensor.repeat(batch // tensor.shape[0], *([1] * (tensor.ndim - 1)))


def rotary_embeddings(config, latent_frames: int, latent_height: int, latent_width: int,
                      device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor] | None:
    """The 3D rotary embedding a CogVideoX(-1.0) I2V pipeline uses for a latent of the given size
    (None when the model has no rotary embeddings)."""
    if not config.use_rotary_positional_embeddings:
        return None
    p = config.patch_size
    grid_h, grid_w = latent_height // p, latent_width // p
    if config.patch_size_t is None:
        crops = get_resize_crop_region_for_grid((grid_h, grid_w), config.sample_width // p, config.sample_height // p)
        return get_3d_rotary_pos_embed(embed_dim=config.attention_head_dim, crops_coords=crops,
                                       grid_size=(grid_h, grid_w), temporal_size=latent_frames, device=device)
    return get_3d_rotary_pos_embed(embed_dim=config.attention_head_dim, crops_coords=None, grid_size=(grid_h, grid_w),
                                   temporal_size=(latent_frames + config.patch_size_t - 1) // config.patch_size_t,
                                   grid_type="slice", max_size=(config.sample_height // p, config.sample_width // p),
                                   device=device)
