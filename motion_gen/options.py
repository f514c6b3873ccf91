"""Speed and memory options of motion generation (``generate.cache``, ``group_offload``, ``layerwise_casting``,
``compile``): diffusers' own hooks, applied by ``motion_gen.generator.build_pipeline``.

The cache and the condition branch. ``CogVideoXConditionTransformer.forward`` adds the branch's projection to the
main stream after each of the first N blocks (N = ``len(condition_blocks)``), outside the blocks. diffusers'
First-Block-Cache hooks a block list: the first block decides, the others are skipped on a cached step and
replaced by the residual (last block's output - first block's output) saved on the last computed step. Hooked
on all of ``transformer_blocks``, that residual already holds the branch's additions, and the forward would add
them again on a cached step (the copy blocks are not hooked, so they still run): counted twice. So only the
blocks after the branch (``transformer_blocks[N:]``) are hooked: the first N blocks and the branch always run,
the residual spans blocks without branch additions, and a cached step gives exactly what diffusers' cache gives
on a plain transformer starting at block N. It needs two such blocks (decider and last); the CogVideoX-5b
release (42 blocks, 12 in the branch) has 30; a model whose branch copies (almost) every block (the toy world)
takes ``pyramid_attention`` instead: Pyramid Attention Broadcast reuses each attention layer's own earlier output
(main and copy blocks alike), so nothing is shared across the branch's additions.
"""
from __future__ import annotations

import logging

import torch
from torch import nn

from data_tools.errors import DataError
from motion_gen.config import CacheConfig, GenerateConfig, fp8_storage_dtype

logger = logging.getLogger(__name__)
OPTIONS_OFF = {"cache": None, "group_offload": None, "layerwise_casting": None, "compile": False}  # the defaults


def first_block_cache_blocks(num_layers: int, num_branch_blocks: int) -> int:
    """Index of the first block that First-Block-Cache hooks (the first after the condition branch); DataError
    when fewer than two blocks follow the branch."""
    if num_layers - num_branch_blocks < 2:
        raise DataError(None, f"'generate.cache: first_block' hooks the blocks after the condition branch and needs "
                              f"two of them; this model has {num_layers} blocks, {num_branch_blocks} in the branch "
                              f"(use method: pyramid_attention)")
    return num_branch_blocks


def enable_first_block_cache(transformer, threshold: float) -> None:
    """diffusers' First-Block-Cache on the blocks after the condition branch (module docstring). ``transformer``'s
    ``disable_cache()`` removes it."""
    from diffusers.hooks import FirstBlockCacheConfig, HookRegistry, apply_first_block_cache

    start = first_block_cache_blocks(len(transformer.transformer_blocks), len(transformer.condition_blocks))
    hooked = nn.Module()  # a view: apply_first_block_cache hooks the children named transformer_blocks
    hooked.transformer_blocks = transformer.transformer_blocks[start:]
    config = FirstBlockCacheConfig(threshold=threshold)
    apply_first_block_cache(hooked, config)
    # as ModelMixin.enable_cache does after hooking: cache contexts and resets then reach the new block hooks
    HookRegistry.check_if_exists_or_initialize(transformer).invalidate_child_registries_cache()
    transformer._cache_config = config


def enable_cache(pipe, cache: CacheConfig) -> None:
    """``generate.cache`` on ``pipe.transformer``."""
    from diffusers.hooks import PyramidAttentionBroadcastConfig

    if cache.method == "first_block":
        enable_first_block_cache(pipe.transformer, cache.threshold)
    else:
        pipe.transformer.enable_cache(PyramidAttentionBroadcastConfig(
            spatial_attention_block_skip_range=cache.skip_range,
            current_timestep_callback=lambda: pipe.current_timestep))
    logger.info("cache on the motion transformer: %s", cache)


def apply_options(pipe, gen: GenerateConfig, device: str) -> None:
    """Place ``pipe`` on ``device`` with the configured options: float8 weight storage, cache, group offload (else
    model CPU offload or ``to(device)``), then ``torch.compile`` of each transformer block (diffusers' regional
    compilation: identical blocks reuse one compiled graph, so compiling costs about one block, not the model)."""
    transformer = pipe.transformer
    if gen.layerwise_casting:
        transformer.enable_layerwise_casting(storage_dtype=fp8_storage_dtype(gen.layerwise_casting),
                                             compute_dtype=transformer.dtype)
    if gen.cache is not None:
        enable_cache(pipe, gen.cache)
    if gen.group_offload:
        cuda = torch.device(device).type == "cuda"
        if not cuda:
            logger.warning("generate.group_offload=%s on %s: the weights stay where they are (no GPU to offload "
                           "from)", gen.group_offload, device)
        pipe.enable_group_offload(torch.device(device), offload_type=gen.group_offload, num_blocks_per_group=1,
                                  use_stream=cuda)
    elif gen.cpu_offload and device != "cpu":
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    if gen.compile:
        transformer.compile_repeated_blocks()
