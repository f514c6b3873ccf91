"""Appearance stage model: ControlNet branches vs the base FLUX transformer, save/load, generator contract."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from appearance_gen.generator import AppearanceGenerator, branch_inputs_from_maps
from appearance_gen.model import AppearanceControlNets
from appearance_gen.pipeline import predict_velocity
from data_tools.maps.bundle import ConditionBundle
from data_tools.errors import DataError

CONFIG = "configs/appearance/tiny.yaml"
H, W = 32, 48


@pytest.fixture(scope="module")
def generator() -> AppearanceGenerator:
    return AppearanceGenerator.load(CONFIG)


def _inputs(gen: AppearanceGenerator, seed: int = 0):
    """Packed noisy latents, prompt embeddings, ids and random branch inputs at H x W."""
    pipe = gen.pipeline
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    maps = {n: rng.integers(0, 256, (1, H, W, 3), dtype=np.uint8) for n in gen.condition_names}
    branch_inputs = branch_inputs_from_maps(gen.branches, maps)
    latents, img_ids = pipe.prepare_latents(1, pipe.transformer.config.in_channels // 4, H, W, torch.float32, "cpu",
                                            torch.Generator().manual_seed(seed))
    embeds, pooled, text_ids = pipe.encode_prompt(["a hand holds a mug"], prompt_2=None, device="cpu",
                                                  max_sequence_length=16)
    return dict(latents=latents, sigma=torch.tensor([0.7]), prompt_embeds=embeds, pooled_prompt_embeds=pooled,
                text_ids=text_ids, img_ids=img_ids, branch_inputs=branch_inputs, guidance_scale=3.5)


def _velocity(pipe, nets, inp, scales=None):
    with torch.no_grad():
        return predict_velocity(pipe.transformer, nets, conditioning_scales=scales, **inp)


def _base_velocity(pipe, inp):
    with torch.no_grad():
        guidance = torch.full((1,), inp["guidance_scale"])
        return pipe.transformer(hidden_states=inp["latents"], timestep=inp["sigma"], guidance=guidance,
                                pooled_projections=inp["pooled_prompt_embeds"], encoder_hidden_states=inp["prompt_embeds"],
                                txt_ids=inp["text_ids"], img_ids=inp["img_ids"], return_dict=False)[0]


def _trained_like(nets: AppearanceControlNets, seed: int = 1) -> AppearanceControlNets:
    """A copy whose zero-initialised weights (output projections, hint conv_out) are made random."""
    copy = AppearanceControlNets.from_config(nets.config)
    copy.load_state_dict(nets.state_dict())
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in copy.parameters():
            if torch.count_nonzero(p) == 0:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return copy.eval()


def test_branches_read_six_channels_and_new_branches_leave_base_output_unchanged(generator):
    nets = generator.pipeline.controlnet
    assert nets.branches == {"physical": ["depth", "normal"], "semantic": ["hand_keypoints", "seg_mask"]}
    for name in nets.branches:
        assert nets.hint_blocks[name].conv_in.in_channels == 6
        # diffusers' new-ControlNet init: zero output projections, blocks copied from the base transformer
        assert all(torch.count_nonzero(b.weight) == 0 for b in nets.controlnets[name].controlnet_blocks)
        base_block = generator.pipeline.transformer.transformer_blocks[0].attn.to_q.weight
        assert torch.equal(nets.controlnets[name].transformer_blocks[0].attn.to_q.weight, base_block)
    inp = _inputs(generator)
    assert torch.equal(_velocity(generator.pipeline, nets, inp), _base_velocity(generator.pipeline, inp))


def test_zero_scale_is_exactly_base_and_each_branch_changes_output(generator):
    pipe = generator.pipeline
    nets = _trained_like(pipe.controlnet)
    inp = _inputs(generator)
    base = _base_velocity(pipe, inp)
    zero = _velocity(pipe, nets, inp, {"physical": 0.0, "semantic": 0.0})
    assert torch.equal(zero, base)
    physical = _velocity(pipe, nets, inp, {"physical": 1.0, "semantic": 0.0})
    semantic = _velocity(pipe, nets, inp, {"physical": 0.0, "semantic": 1.0})
    both = _velocity(pipe, nets, inp)
    for out in (physical, semantic, both):
        assert (out - base).abs().max() > 1e-3
    assert (physical - semantic).abs().max() > 1e-3
    # changing only the semantic maps moves the output only when the semantic branch is on
    inp2 = dict(inp, branch_inputs=dict(inp["branch_inputs"], semantic=-inp["branch_inputs"]["semantic"]))
    assert torch.equal(_velocity(pipe, nets, inp2, {"physical": 1.0, "semantic": 0.0}), physical)
    assert (_velocity(pipe, nets, inp2, {"physical": 0.0, "semantic": 1.0}) - semantic).abs().max() > 1e-4


def test_save_load_round_trip(generator, tmp_path):
    nets = _trained_like(generator.pipeline.controlnet)
    nets.save_pretrained(tmp_path / "nets", safe_serialization=True)
    assert (tmp_path / "nets" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = AppearanceControlNets.from_pretrained(tmp_path / "nets").eval()
    assert loaded.branches == nets.branches
    ref, new = nets.state_dict(), loaded.state_dict()
    assert ref.keys() == new.keys() and all(torch.equal(ref[k], new[k]) for k in ref)
    inp = _inputs(generator, seed=3)
    assert torch.equal(_velocity(generator.pipeline, loaded, inp), _velocity(generator.pipeline, nets, inp))


def test_configurable_branch_mapping(generator):
    nets = AppearanceControlNets.from_transformer(generator.pipeline.transformer,
                                                  branches={"physical": ["depth"], "semantic": ["hand_keypoints", "seg_mask", "normal"]},
                                                  hint_block_out_channels=(4, 4, 4, 4))
    assert nets.hint_blocks["physical"].conv_in.in_channels == 3
    assert nets.hint_blocks["semantic"].conv_in.in_channels == 9
    with pytest.raises(DataError, match="unknown condition"):
        AppearanceControlNets(branches={"physical": ["albedo"]})
    with pytest.raises(DataError, match="unknown ControlNet branch"):
        nets.scales({"geometry": 1.0})


def test_generator_contract(generator):
    rng = np.random.default_rng(0)
    bundle = ConditionBundle({n: rng.integers(0, 256, (3, 40, 60, 3), dtype=np.uint8) for n in generator.condition_names},
                             prompt="a hand grasps a red can")
    frames = generator.generate(bundle, seeds=[0, 5])
    assert len(frames) == 2 and all(f.shape == (40, 60, 3) and f.dtype == np.uint8 for f in frames)
    assert not np.array_equal(frames[0], frames[1])
    again = generator.generate(bundle, seeds=[5])
    assert np.array_equal(again[0], frames[1])  # a seed's image does not depend on the other seeds
    with pytest.raises(DataError, match="lacks conditions"):
        generator.generate(bundle.select(["depth"]), seeds=[0])


def test_pretrained_folder_loads_like_the_tiny_model(generator, tmp_path):
    """The real-weights path: a diffusers FLUX folder + a saved AppearanceControlNets folder give the same images."""
    pipe = generator.pipeline
    base = tmp_path / "flux"
    for sub in ("transformer", "vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "scheduler"):
        getattr(pipe, sub).save_pretrained(base / sub)
    nets = _trained_like(pipe.controlnet)
    nets.save_pretrained(tmp_path / "nets")
    real = AppearanceGenerator.load(CONFIG, ["model.source=pretrained", f"model.base_path={base}",
                                             f"model.controlnet_path={tmp_path / 'nets'}"])
    tiny = AppearanceGenerator.from_config(generator.config, controlnet=nets)
    rng = np.random.default_rng(2)
    bundle = ConditionBundle({n: rng.integers(0, 256, (1, 32, 48, 3), dtype=np.uint8) for n in real.condition_names},
                             prompt="a hand grasps a red can")
    a, b = real.generate(bundle, seeds=[7])[0], tiny.generate(bundle, seeds=[7])[0]
    assert np.array_equal(a, b)
    assert not np.array_equal(a, generator.generate(bundle, seeds=[7])[0])  # the trained-like branches matter
    with pytest.raises(DataError, match="missing component folder"):
        AppearanceGenerator.load(CONFIG, ["model.source=pretrained", f"model.base_path={tmp_path / 'nets'}"])


def test_config_scales_apply_to_loaded_branches(generator, tmp_path):
    nets = _trained_like(generator.pipeline.controlnet)
    nets.save_pretrained(tmp_path / "nets")
    rng = np.random.default_rng(4)
    bundle = ConditionBundle({n: rng.integers(0, 256, (1, 32, 48, 3), dtype=np.uint8) for n in generator.condition_names})
    load = lambda *o: AppearanceGenerator.load(CONFIG, [f"model.controlnet_path={tmp_path / 'nets'}", *o])  # noqa: E731
    off = load("controlnet.conditioning_scales.physical=0", "controlnet.conditioning_scales.semantic=0")
    on = load()
    base = off.generate(bundle, [1])[0]
    assert np.array_equal(base, generator.generate(bundle, [1])[0])  # all scales 0: the base model's image
    assert not np.array_equal(on.generate(bundle, [1])[0], base)
    assert np.array_equal(on.generate(bundle, [1], conditioning_scales={"physical": 0, "semantic": 0})[0], base)


def _flux_vae_on_meta(num_blocks: int):
    from diffusers import AutoencoderKL

    widths = [128, 256, 512, 512][:num_blocks]
    with torch.device("meta"):
        return AutoencoderKL(in_channels=3, out_channels=3, latent_channels=16, block_out_channels=widths,
                             down_block_types=["DownEncoderBlock2D"] * num_blocks,
                             up_block_types=["UpDecoderBlock2D"] * num_blocks, layers_per_block=2)


def test_hint_blocks_downscale_as_the_vae_and_real_size_keeps_the_reference_layout():
    """FLUX.1-dev sizes on the meta device: the hint blocks of flux_dev.yaml (explicit) and of a derived layout
    (null) are the reference's 8x blocks of 8 convs; a 4x VAE (three blocks, the toy world's) gets 4x blocks."""
    from diffusers import FluxTransformer2DModel

    from appearance_gen.components import FluxComponents, build_controlnets
    from appearance_gen.config import load_appearance_config
    from appearance_gen.model import vae_downscale

    with torch.device("meta"):
        transformer = FluxTransformer2DModel(guidance_embeds=True)  # FLUX.1-dev: 19 + 38 layers, 3072 wide
    for hint, blocks, downscale, convs in (("[16,16,16,16]", 4, 8, 8), ("null", 4, 8, 8), ("null", 3, 4, 6)):
        vae = _flux_vae_on_meta(blocks)
        assert vae_downscale(vae.config) == downscale  # the formula of diffusers' FluxPipeline / CogVideoX
        cfg = load_appearance_config("configs/appearance/flux_dev.yaml", [f"controlnet.hint_block_out_channels={hint}"])
        with torch.device("meta"):
            nets = build_controlnets(cfg, FluxComponents(transformer, vae, None, None, None, None, None))
        assert nets.hint_downscale == downscale
        for block in nets.hint_blocks.values():
            assert sum(isinstance(m, torch.nn.Conv2d) for m in block.modules()) == convs
            assert sum(m.stride == (2, 2) for m in block.modules() if isinstance(m, torch.nn.Conv2d)) == blocks - 1
    cfg = load_appearance_config("configs/appearance/flux_dev.yaml")  # explicit 8x layout, 4x VAE: refused
    with pytest.raises(DataError, match="VAE downscales 4x"), torch.device("meta"):
        build_controlnets(cfg, FluxComponents(transformer, _flux_vae_on_meta(3), None, None, None, None, None))
