"""Converting the reference's two-branch x-flux ``controlnet.bin`` and this engine's own appearance checkpoints."""
from __future__ import annotations

import json
import os

import pytest
import torch

from appearance_gen.convert_ckpt import convert, convert_reference, main
from appearance_gen.model import AppearanceControlNets
from appearance_gen.pipeline import predict_velocity
from data_tools.errors import DataError
from release_fixtures import randomize, to_reference_controlnet_state, xflux_controlnet_residuals

TINY_FLUX = dict(patch_size=1, in_channels=16, num_layers=3, num_single_layers=1, attention_head_dim=8,
                 num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=24, guidance_embeds=True,
                 axes_dims_rope=[2, 2, 4])


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A tiny FLUX base folder, random branches, and the branches saved in the reference layout."""
    from diffusers import FluxTransformer2DModel

    root = tmp_path_factory.mktemp("release_appearance")
    torch.manual_seed(0)
    base = randomize(FluxTransformer2DModel(**TINY_FLUX), seed=1, std=0.1).eval()
    base.save_pretrained(root / "flux" / "transformer")
    nets = randomize(AppearanceControlNets.from_transformer(base, hint_block_out_channels=(4, 4, 4, 4)), seed=2)
    reference = to_reference_controlnet_state(nets)
    torch.save(reference, root / "controlnet.bin")
    return root, base, nets.eval(), reference


def _inputs(seed=0):
    gen = torch.Generator().manual_seed(seed)
    from diffusers.pipelines.flux.pipeline_flux import FluxPipeline

    img_ids = FluxPipeline._prepare_latent_image_ids(1, 4, 6, "cpu", torch.float32)  # 64x96 image, 8x VAE
    return dict(latents=torch.randn(1, 24, 16, generator=gen), img_ids=img_ids,
                txt=torch.randn(1, 5, 32, generator=gen), txt_ids=torch.zeros(5, 3),
                pooled=torch.randn(1, 24, generator=gen), sigma=torch.tensor([0.7]), guidance=4.0,
                conditions={"physical": torch.rand(1, 6, 64, 96, generator=gen) * 2 - 1,
                            "semantic": torch.rand(1, 6, 64, 96, generator=gen) * 2 - 1})


def _independent(reference, inp, prefix):
    branch = {"controlnet1": "physical", "controlnet2": "semantic"}[prefix]
    return xflux_controlnet_residuals(reference, prefix, inp["latents"], inp["img_ids"], inp["conditions"][branch],
                                      inp["txt"], inp["txt_ids"], inp["sigma"], inp["pooled"],
                                      torch.tensor([inp["guidance"]]), TINY_FLUX["axes_dims_rope"],
                                      TINY_FLUX["num_attention_heads"])


def test_release_controlnet_conversion_matches_independent_xflux_forward(release, tmp_path):
    root, base, _, reference = release
    out = convert_reference(str(root / "controlnet.bin"), str(tmp_path / "nets"), flux=str(root / "flux"))
    nets = AppearanceControlNets.from_pretrained(out).eval()
    assert nets.config.blocks_repeat is True and nets.branches == {"physical": ["depth", "normal"],
                                                                   "semantic": ["hand_keypoints", "seg_mask"]}
    assert list(nets.config.hint_block_out_channels) == [4, 4, 4, 4] and nets.config.num_layers == 2
    assert sorted(os.listdir(out)) == ["config.json", "diffusion_pytorch_model.safetensors"]
    inp = _inputs()
    kwargs = dict(timestep=inp["sigma"], encoder_hidden_states=inp["txt"], pooled_projections=inp["pooled"],
                  txt_ids=inp["txt_ids"], img_ids=inp["img_ids"], guidance=torch.tensor([inp["guidance"]]))
    expected = {}
    with torch.no_grad():
        for prefix, branch, other in (("controlnet1", "physical", "semantic"), ("controlnet2", "semantic", "physical")):
            ours = nets(inp["latents"], inp["conditions"], conditioning_scales={other: 0.0}, **kwargs)
            expected[branch] = _independent(reference, inp, prefix)
            assert len(ours) == len(expected[branch]) == 2
            for a, b in zip(ours, expected[branch]):
                assert b.abs().mean() > 0.05
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        # the final FLUX output: residual i % 2 of the summed branches after base double block i (x-flux)
        summed = [a + b for a, b in zip(expected["physical"], expected["semantic"])]
        guidance = torch.tensor([inp["guidance"]])
        want = base(hidden_states=inp["latents"], timestep=inp["sigma"], guidance=guidance,
                    pooled_projections=inp["pooled"], encoder_hidden_states=inp["txt"], txt_ids=inp["txt_ids"],
                    img_ids=inp["img_ids"], controlnet_block_samples=summed, controlnet_blocks_repeat=True,
                    return_dict=False)[0]
        got = predict_velocity(base, nets, inp["latents"], inp["sigma"], inp["txt"], inp["pooled"], inp["txt_ids"],
                               inp["img_ids"], inp["conditions"], inp["guidance"])
        without = base(hidden_states=inp["latents"], timestep=inp["sigma"], guidance=guidance,
                       pooled_projections=inp["pooled"], encoder_hidden_states=inp["txt"], txt_ids=inp["txt_ids"],
                       img_ids=inp["img_ids"], return_dict=False)[0]
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert (got - without).abs().max() > 1e-2  # the branches change the output


def test_release_controlnet_conversion_names_bad_keys(release, tmp_path):
    root, _, _, reference = release
    broken = dict(reference)
    broken.pop("controlnet2.double_blocks.1.txt_mlp.2.bias")
    broken["controlnet1.double_blocks.0.img_attn.extra.weight"] = torch.zeros(1)
    torch.save(broken, tmp_path / "broken.bin")
    with pytest.raises(DataError, match=r"unknown keys.*double_blocks\.0\.img_attn\.extra\.weight"):
        convert_reference(str(tmp_path / "broken.bin"), str(tmp_path / "a"), flux=str(root / "flux"))
    broken.pop("controlnet1.double_blocks.0.img_attn.extra.weight")
    torch.save(broken, tmp_path / "broken.bin")
    with pytest.raises(DataError, match=r"missing: controlnets\.semantic\.transformer_blocks\.1\.ff_context\.net\.2\.bias"):
        convert_reference(str(tmp_path / "broken.bin"), str(tmp_path / "b"), flux=str(root / "flux"))
    torch.save({k: v for k, v in reference.items() if k.startswith("controlnet1.")}, tmp_path / "one.bin")
    with pytest.raises(DataError, match=r"missing branch controlnet2"):
        convert_reference(str(tmp_path / "one.bin"), str(tmp_path / "c"), flux=str(root / "flux"))
    assert not any(p.name in ("a", "b", "c") for p in tmp_path.iterdir())  # nothing half-written


def test_release_controlnet_conversion_checks_the_flux_base(release, tmp_path):
    root, _, _, _ = release
    config = json.loads((root / "flux" / "transformer" / "config.json").read_text())
    (tmp_path / "flux" / "transformer").mkdir(parents=True)
    (tmp_path / "flux" / "transformer" / "config.json").write_text(json.dumps({**config, "joint_attention_dim": 64}))
    with pytest.raises(DataError, match="joint_attention_dim 32 != 64"):
        convert_reference(str(root / "controlnet.bin"), str(tmp_path / "out"), flux=str(tmp_path / "flux"))
    with pytest.raises(DataError, match="pass --flux"):  # tiny heads are not FLUX.1's: the rotary axes are unknown
        convert_reference(str(root / "controlnet.bin"), str(tmp_path / "out"))


def test_release_controlnet_safetensors_input_via_cli(release, tmp_path):
    from safetensors.torch import load_file, save_file

    root, _, nets, reference = release
    save_file(reference, tmp_path / "controlnet.safetensors")
    assert main(["--reference", str(tmp_path / "controlnet.safetensors"), "--flux", str(root / "flux"),
                 "--out", str(tmp_path / "nets"), "--dtype", "bf16"]) == 0
    loaded = AppearanceControlNets.from_pretrained(tmp_path / "nets", torch_dtype=torch.bfloat16)
    stored = load_file(tmp_path / "nets" / "diffusion_pytorch_model.safetensors")
    assert {v.dtype for v in stored.values()} == {torch.bfloat16}
    torch.testing.assert_close(loaded.state_dict()["hint_blocks.semantic.conv_out.weight"].float(),
                               nets.hint_blocks["semantic"].conv_out.weight.bfloat16().float())


def test_release_one_convert_cli_picks_the_stage(release, tmp_path):
    """scripts/convert_ckpt.sh (sim2real.convert_ckpt): the stage comes from the input."""
    from sim2real.convert_ckpt import detect_stage, main as convert_main

    root, _, nets, _ = release
    for key, stage in (("controlnet_config", "appearance"), ("transformer_config", "motion")):
        ckpt = tmp_path / key / "checkpoints" / "checkpoint-3"
        ckpt.mkdir(parents=True)
        (ckpt / "trainer_state.json").write_text(json.dumps({"step": 3, "config": {key: {"a": 1}}}))
        assert detect_stage(str(tmp_path / key), None) == stage
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "trainer_state.json").write_text(json.dumps({"step": 1, "config": {}}))
    with pytest.raises(DataError, match="--stage"):
        detect_stage(str(tmp_path / "other"), None)
    assert detect_stage(None, str(tmp_path)) == "motion"  # a reference transformer folder
    assert convert_main(["--out", str(tmp_path / "nets"), "--reference", str(root / "controlnet.bin"),
                         "--flux", str(root / "flux")]) == 0
    converted = AppearanceControlNets.from_pretrained(tmp_path / "nets")
    assert all(torch.equal(v, nets.state_dict()[k]) for k, v in converted.state_dict().items())


def test_release_appearance_config_reproduces_the_reference_sampling():
    """pam_release.yaml: 28 steps, guidance 4.0, scales 1.0, and x-flux's shifted schedule, checked on the
    scheduler's sigmas against the reference formula exp(mu) / (exp(mu) + 1/t - 1), t = linspace(1, 0, n + 1)."""
    import numpy as np

    from appearance_gen.config import load_appearance_config
    from appearance_gen.generator import AppearanceGenerator
    from appearance_gen.pipeline import schedule_shift
    from data_tools.maps.bundle import ConditionBundle

    cfg = load_appearance_config("configs/appearance/pam_release.yaml")
    assert (cfg.sampling.num_inference_steps, cfg.sampling.guidance_scale) == (28, 4.0)
    assert cfg.controlnet.conditioning_scales == {"physical": 1.0, "semantic": 1.0} and cfg.controlnet.blocks_repeat
    # DexYCB's 480x640 (double_infer_sim.py), fp32 compute over bf16 weights, normals blanked as in training
    assert cfg.sampling.schedule_seq_len == "xflux" and cfg.sampling.size == [480, 640]
    assert (cfg.model.dtype, cfg.model.compute_dtype, cfg.controlnet.blank_maps) == ("bfloat16", "float32", ["normal"])
    assert cfg.sampling.seeds == [42, 43, 44, 45]
    sched = {"base_image_seq_len": 256, "max_image_seq_len": 4096, "base_shift": 0.5, "max_shift": 1.15}
    assert schedule_shift(480, 720, sched, "xflux") == pytest.approx(0.5 + (21 - 256) * 0.65 / 3840)  # 0.460
    assert schedule_shift(480, 640, sched, "xflux") == pytest.approx(0.5 + (18 - 256) * 0.65 / 3840)  # 60*80//256
    assert schedule_shift(480, 720, sched, "tokens") == pytest.approx(0.5 + (1350 - 256) * 0.65 / 3840)  # 0.685
    gen = AppearanceGenerator.load("configs/appearance/tiny.yaml", ["sampling.schedule_seq_len=xflux"], device="cpu")
    rng = np.random.default_rng(0)
    bundle = ConditionBundle({n: rng.integers(0, 256, (1, 64, 96, 3), dtype=np.uint8) for n in gen.condition_names})
    gen.generate(bundle, seeds=[0], num_inference_steps=3)
    mu = 0.5 + (0 - 256) * 0.65 / 3840  # (96/8)(64/8)/256 = 0
    t = np.linspace(1, 0, 4)[:-1]
    expected = np.exp(mu) / (np.exp(mu) + 1 / t - 1)
    np.testing.assert_allclose(gen.pipeline.scheduler.sigmas[:-1].numpy(), expected, rtol=1e-5)


def test_release_controlnet_sizes_read_at_flux1_width():
    """At FLUX.1-dev's real sizes (meta tensors, no memory) every dimension comes back from the shapes, and the
    rotary axes default to FLUX.1's without --flux."""
    from accelerate import init_empty_weights

    from appearance_gen.convert_ckpt import reference_to_engine

    with init_empty_weights():
        real = AppearanceControlNets()  # the class defaults are FLUX.1-dev's: 3072 wide, 24 heads, 64 channels
    config, state = reference_to_engine(to_reference_controlnet_state(real), "controlnet.bin")
    for key in ("in_channels", "num_layers", "attention_head_dim", "num_attention_heads", "joint_attention_dim",
                "pooled_projection_dim", "guidance_embeds", "hint_channels", "blocks_repeat"):
        assert config[key] == real.config[key], key
    assert list(config["hint_block_out_channels"]) == [16, 16, 16, 16] and config["axes_dims_rope"] == [16, 56, 56]
    assert sorted(state) == sorted(real.state_dict())


def test_branches_are_rebuilt_from_the_flux_transformer_alone(tmp_path, monkeypatch):
    """Converting a branch-only checkpoint of a run on a FLUX folder rebuilds the initial branches from its
    transformer and the VAE's config, reading neither text encoder: the same branches as from all components."""
    import transformers

    from appearance_gen.components import build_components, build_controlnets
    from appearance_gen.config import load_appearance_config
    from appearance_gen.convert_ckpt import branch_sources
    from release_fixtures import make_fake_flux

    make_fake_flux(tmp_path / "flux")
    cfg = load_appearance_config("configs/appearance/tiny.yaml", ["model.source=pretrained",
                                                                  f"model.base_path={tmp_path / 'flux'}"])
    whole = build_controlnets(cfg, build_components(cfg.model)).state_dict()

    def refuse(*args, **kwargs):
        raise AssertionError("a text encoder was read")

    for name in ("CLIPTextModel", "T5EncoderModel"):
        monkeypatch.setattr(getattr(transformers, name), "from_pretrained", refuse)
    alone = build_controlnets(cfg, branch_sources(cfg.model)).state_dict()
    assert alone.keys() == whole.keys() and all(torch.equal(alone[k], whole[k]) for k in whole)
    with pytest.raises(DataError, match="missing component folder"):
        branch_sources(load_appearance_config("configs/appearance/tiny.yaml", [
            "model.source=pretrained", f"model.base_path={tmp_path}"]).model)
