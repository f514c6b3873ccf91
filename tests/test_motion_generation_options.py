"""Speed and memory options of motion generation (generate.cache / group_offload / layerwise_casting / compile,
motion_gen/options.py) on the tiny config with 4 blocks (1 in the condition branch, 3 after it), on the CPU."""
import json
import os
import shutil

import numpy as np
import pytest
import torch

from data_tools.errors import DataError
from data_tools.maps.bundle import ConditionBundle
from motion_gen.bench_options import count_block_calls
from motion_gen.config import load_motion_config
from motion_gen.generator import MotionGenerator

TINY = "configs/motion/tiny.yaml"
FOUR_BLOCKS = ["model.tiny.num_layers=4"]
STEPS = 6
FIRST = np.full((32, 48, 3), 128, np.uint8)
NEVER_SKIP = "generate.cache={method: first_block, threshold: 0}"  # only an unchanged residual is reused
ALWAYS_SKIP = "generate.cache={method: first_block, threshold: 1.0e9}"  # every step after the first is cached


def _bundle():
    rng = np.random.default_rng(0)
    return ConditionBundle({n: rng.integers(0, 255, (9, 32, 48, 3), dtype=np.uint8)
                            for n in ("hand_keypoints", "depth", "seg_mask")}, prompt="a hand lifts a can")


def _generator(*overrides, branch=True) -> MotionGenerator:
    """The 4-block tiny model; ``branch``: its zero-initialised branch linears made non-zero (as after training),
    so that counting the branch twice would show."""
    torch.manual_seed(0)
    gen = MotionGenerator.load(TINY, [*FOUR_BLOCKS, *overrides])
    if branch:
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for p in gen.pipe.transformer.branch_parameters():
                p.add_(torch.randn(p.shape, generator=g).to(p.dtype) * 0.2)
    return gen


def _video(gen, seed=3):
    with count_block_calls(gen.pipe.transformer) as counts:
        video = gen.generate(FIRST, _bundle(), seed=seed, num_inference_steps=STEPS)
    return video, counts


@pytest.fixture(scope="module")
def plain():
    """(video, block counts) of the model without any option, branch non-zero."""
    return _video(_generator())


def _diffusers_hooks(module) -> list[str]:
    return [name for name, m in module.named_modules() if getattr(m, "_diffusers_hook", None) is not None
            and m._diffusers_hook.hooks]


@pytest.mark.parametrize("override", ["generate.cache=null", "generate.group_offload=null",
                                      "generate.layerwise_casting=null", "generate.compile=false"])
def test_each_option_off_leaves_the_output_bit_identical(plain, override):
    gen = _generator(override)
    assert not _diffusers_hooks(gen.pipe.transformer) and gen.pipe.transformer._compiled_call_impl is None
    assert all(block._compiled_call_impl is None for block in gen.pipe.transformer.transformer_blocks)
    video, counts = _video(gen)
    assert np.array_equal(video, plain[0]) and counts == plain[1]


def test_first_block_cache_skips_the_blocks_after_the_decider(plain):
    """Threshold 1e9: every step after the first reuses the cached residual, so transformer blocks 2 and 3 (after
    the decider, block 1) run once; block 0 and the branch's copy block, before the hooked range, run every step."""
    per_step = {"transformer_blocks.0": 1, "transformer_blocks.1": 1, "transformer_blocks.2": 1,
                "transformer_blocks.3": 1, "condition_blocks.0": 1}
    assert {k: v for k, v in plain[1].items() if not k.endswith("attn1")} == {k: STEPS for k in per_step}
    _, counts = _video(_generator(ALWAYS_SKIP))
    blocks = {k: v for k, v in counts.items() if not k.endswith("attn1")}
    assert blocks == {**{k: STEPS for k in per_step}, "transformer_blocks.2": 1, "transformer_blocks.3": 1}
    assert sum(plain[1].values()) - sum(counts.values()) == 2 * 2 * (STEPS - 1)  # 2 blocks, with their attention


def test_first_block_cache_that_never_skips_gives_the_uncached_video_exactly(plain):
    video, counts = _video(_generator(NEVER_SKIP))
    assert counts == plain[1]
    assert np.array_equal(video, plain[0])


def _twice(transformer):
    """The transformer's output for the same random inputs, called twice in one cache context (the second call
    is a cached one when the threshold allows: its first-block residual is unchanged)."""
    from motion_gen.bench import _inputs

    inputs, conditions = _inputs(transformer.config, 1, 3, 4, 6, transformer.config.condition_names, "cpu",
                                 torch.float32)
    with torch.no_grad(), transformer.cache_context("test"), count_block_calls(transformer) as counts:
        outputs = [transformer(conditions=conditions, **inputs).sample for _ in range(2)]
    transformer._reset_stateful_cache()
    return outputs, counts


def test_cached_step_counts_the_condition_branch_once():
    """A cached step on unchanged inputs must give the computed step's output: the branch's additions are in it
    once. The naive hookup (diffusers' enable_cache on every transformer block) counts them twice: the residual
    it reuses holds the additions after block 0 and the forward adds them again (the control)."""
    from diffusers.hooks import FirstBlockCacheConfig

    (computed, cached), counts = _twice(_generator(ALWAYS_SKIP).pipe.transformer)
    assert counts["transformer_blocks.3"] == 1 and counts["condition_blocks.0"] == 2  # the second call was cached
    torch.testing.assert_close(cached, computed, rtol=0, atol=1e-5)
    naive = _generator().pipe.transformer
    naive.enable_cache(FirstBlockCacheConfig(threshold=1.0e9))
    (computed, cached), counts = _twice(naive)
    assert counts["transformer_blocks.3"] == 1
    assert (cached - computed).abs().max() > 1e-2


def test_cache_keeps_the_video_close(plain):
    """Caching that reuses some of the 6 steps (first_block at threshold 0.5: 1 step; pyramid attention: 2 of 6
    attention computations) keeps the video within a tenth of another seed's mean difference from the uncached one
    (measured: 0.40 and 2.5 grey levels against 53)."""
    other_seed = np.abs(_video(_generator(), seed=4)[0].astype(int) - plain[0]).mean()
    for override, reused in [("generate.cache={method: first_block, threshold: 0.5}", "transformer_blocks.3"),
                             ("generate.cache={method: pyramid_attention}", "transformer_blocks.3.attn1")]:
        video, counts = _video(_generator(override))
        assert counts[reused] < STEPS, override  # something was reused
        assert 0 < np.abs(video.astype(int) - plain[0]).mean() <= 0.1 * other_seed, override


@pytest.mark.parametrize("overrides, message", [
    (["generate.cache={method: teacache}"], "'generate.cache.method' must be one of"),
    (["generate.cache={method: first_block, threshold: -1}"], "'generate.cache.threshold' must be >= 0"),
    (["generate.group_offload=model_level"], "'generate.group_offload' must be one of"),
    (["generate.group_offload=block_level", "generate.cpu_offload=true"], "exclude each other"),
    (["generate.layerwise_casting=int8"], "'generate.layerwise_casting' must be one of"),
    (["generate.compile=max-autotune"], "'generate.compile' must be true or false"),
])
def test_invalid_values_are_refused_at_load(overrides, message):
    with pytest.raises(DataError, match=message):
        load_motion_config(TINY, [*FOUR_BLOCKS, *overrides])


def test_first_block_cache_needs_two_blocks_after_the_branch():
    """The 2-block tiny config has one block after its 1-block branch: refused at load, pyramid attention is not."""
    with pytest.raises(DataError, match="needs two of them; this model has 2 blocks, 1 in the branch"):
        load_motion_config(TINY, ["generate.cache={method: first_block}"])
    assert load_motion_config(TINY, ["generate.cache={method: pyramid_attention}"]).generate.cache.skip_range == 2


def test_fp8_refused_where_torch_cannot_store_it(monkeypatch):
    from motion_gen import config

    monkeypatch.setitem(config.FP8_STORAGE, "fp8_e4m3", "float8_absent")
    with pytest.raises(DataError, match="cannot store float8_absent weights"):
        load_motion_config(TINY, ["generate.layerwise_casting=fp8_e4m3"])


def test_layerwise_casting_stores_fp8_weights_and_stays_close():
    """Linear weights in float8 (e4m3), norms and the patch embedding kept (diffusers' skip list); the video within
    2 grey levels on average of the fp32 weights' (the tiny model's random weights lose 3 bits of mantissa)."""
    fp32 = _generator(branch=False)
    fp8 = _generator("generate.layerwise_casting=fp8_e4m3", branch=False)
    block = fp8.pipe.transformer.transformer_blocks[0]
    assert block.attn1.to_q.weight.dtype == torch.float8_e4m3fn
    assert fp8.pipe.transformer.condition_projections[0].weight.dtype == torch.float8_e4m3fn
    assert block.norm1.linear.weight.dtype == torch.float32  # "norm" is skipped
    assert fp8.pipe.transformer.patch_embed.proj.weight.dtype == torch.float32
    diff = np.abs(_video(fp8)[0].astype(int) - _video(fp32)[0])
    assert 0 < diff.mean() <= 2.0


@pytest.mark.parametrize("kind", ["block_level", "leaf_level"])
def test_group_offload_hooks_every_component_and_keeps_the_video(plain, kind):
    """On the CPU the groups are "onloaded" to the CPU: the hooks are in place and the video is bit-identical."""
    from diffusers.hooks.group_offloading import _is_group_offload_enabled

    gen = _generator(f"generate.group_offload={kind}")
    assert all(_is_group_offload_enabled(getattr(gen.pipe, name)) for name in ("transformer", "vae", "text_encoder"))
    video, counts = _video(gen)
    assert np.array_equal(video, plain[0]) and counts == plain[1]


@pytest.mark.skipif(not shutil.which(os.environ.get("CXX") or "g++"),   # inductor's compiler: $CXX, else g++
                    reason="torch.compile on the CPU needs a C++ compiler ($CXX or g++)")
def test_compile_wraps_each_block_of_a_loaded_pipeline_only(plain):
    """generate.compile=true compiles each block of the loaded transformer, base and branch (diffusers' regional
    compilation: a few graphs for all blocks, seconds on the CPU here), not the whole model; its video, alone and
    with the first-block cache (whose decision is a graph break diffusers makes on purpose), equals the plain one
    to within float rounding, running compiled code (no recompilation limit hit: the counting hooks stay off). A
    transformer passed to build_pipeline (training's validation) is left as it is, cache included."""
    from torch._dynamo.utils import counters

    from motion_gen.generator import build_pipeline

    for extra in ([], [NEVER_SKIP]):
        torch._dynamo.reset()
        counters.clear()
        compiled = _generator("generate.compile=true", *extra)
        transformer = compiled.pipe.transformer
        blocks = [*transformer.transformer_blocks, *transformer.condition_blocks]
        assert all(block._compiled_call_impl is not None for block in blocks) and len(transformer.condition_blocks)
        assert transformer._compiled_call_impl is None and transformer.is_cache_enabled == bool(extra)
        video = compiled.generate(FIRST, _bundle(), seed=3, num_inference_steps=STEPS)
        assert np.abs(video.astype(int) - plain[0]).max() <= 1
        assert counters["frames"]["ok"] >= 1 and 1 <= counters["stats"]["unique_graphs"] < 8, dict(counters)
    cached = _generator("generate.compile=true", ALWAYS_SKIP, branch=False)
    plain_transformer = _generator(branch=False).pipe.transformer
    build_pipeline(cached.cfg, "cpu", transformer=plain_transformer, text_encoder=False)
    assert plain_transformer._compiled_call_impl is None and not _diffusers_hooks(plain_transformer)
    assert all(block._compiled_call_impl is None for block in plain_transformer.transformer_blocks)


def test_bench_options_tiny_writes_each_option(tmp_path):
    from motion_gen.bench_options import main

    out = tmp_path / "options.json"
    main(["--tiny", "--options", "plain,pyramid_attention", "--steps", "2", "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["size"] == [9, 32, 48] and result["steps"] == 2 and list(result["options"]) == ["plain",
                                                                                                 "pyramid_attention"]
    plain, pab = result["options"]["plain"], result["options"]["pyramid_attention"]
    assert plain["seconds_per_video"] > 0 and plain["max_memory_allocated_gib"] is None
    assert plain["blocks_computed"] == pab["blocks_computed"] == 2 * 5
    assert pab["attentions_computed"] < plain["attentions_computed"]
    with pytest.raises(DataError, match="unknown \\['teacache'\\]"):
        main(["--tiny", "--options", "teacache", "--out", str(out)])


def test_toy_world_demo_iou_with_the_cache(tmp_path, monkeypatch, caplog):
    """The toy world's demo (committed models) with generate.cache=pyramid_attention: the video's object IoU stays
    above the uncached floor and within 0.05 of the uncached demo's (measured: 0.588 against 0.574, 2 cores)."""
    import margins

    if not os.path.isdir(os.path.join(margins.ROOT, "assets", "toy_world", "motion_all")):
        pytest.skip("assets/toy_world/motion_all is absent")
    monkeypatch.chdir(margins.ROOT)
    with caplog.at_level("INFO", logger="motion_gen.options"):
        cached = margins.demo_iou(str(tmp_path / "cache"), margins.DEMO_CACHE)["video"]["iou_object"]
    assert "cache on the motion transformer: CacheConfig(method='pyramid_attention'" in caplog.text
    margins.check({"demo_cache.video.iou_object": cached})
    assert abs(cached - margins.demo_iou(str(tmp_path / "plain"))["video"]["iou_object"]) <= 0.05


def test_a_call_that_fails_mid_way_leaves_no_cached_residual():
    """A video stopped by an error (out of memory, here injected at the third step) must not hand its cached
    residual to the next call: with a cache that reuses whenever it can, the next video equals a fresh
    generator's."""
    fresh = _generator(ALWAYS_SKIP).generate(FIRST, _bundle(), seed=3, num_inference_steps=STEPS)
    gen = _generator(ALWAYS_SKIP)
    step, calls = gen.pipe.scheduler.step, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("CUDA out of memory (injected)")
        return step(*args, **kwargs)

    gen.pipe.scheduler.step = failing
    with pytest.raises(RuntimeError, match="injected"):
        gen.generate(FIRST, _bundle(), seed=4, num_inference_steps=STEPS)
    gen.pipe.scheduler.step = step
    assert np.array_equal(gen.generate(FIRST, _bundle(), seed=3, num_inference_steps=STEPS), fresh)
