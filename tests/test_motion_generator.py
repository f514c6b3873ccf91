"""MotionGenerator / pipeline on the tiny config: shapes, determinism, DexYCB sample conditions, errors."""
import numpy as np
import pytest
import torch

from data_tools.maps.bundle import ConditionBundle
from data_tools.errors import DataError
from motion_gen.generator import MotionGenerator

TINY = "configs/motion/tiny.yaml"


@pytest.fixture(scope="module")
def generator():
    torch.manual_seed(0)
    return MotionGenerator.load(TINY)


def _bundle(frames=9, size=(32, 48), names=("hand_keypoints", "depth", "seg_mask")):
    rng = np.random.default_rng(0)
    return ConditionBundle({n: rng.integers(0, 255, (frames, *size, 3), dtype=np.uint8) for n in names},
                           prompt="a hand lifts a can")


def test_contract_shapes_and_determinism(generator):
    assert generator.condition_names == ["hand_keypoints", "depth", "seg_mask"]
    assert (generator.num_frames, generator.height, generator.width) == (9, 32, 48)
    first = np.full((32, 48, 3), 128, np.uint8)
    a = generator.generate(first, _bundle(), seed=3, num_inference_steps=2)
    b = generator.generate(first, _bundle(), seed=3, num_inference_steps=2)
    c = generator.generate(first, _bundle(), seed=4, num_inference_steps=2)
    assert a.shape == (9, 32, 48, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # 4k+1 with an even latent count (5 -> 2 latents) still gives exactly T frames, at the bundle's size
    assert generator.generate(first, _bundle(5, (64, 32)), num_inference_steps=1).shape == (5, 64, 32, 3)


def test_errors(generator):
    first = np.zeros((32, 48, 3), np.uint8)
    with pytest.raises(DataError, match="4k\\+1"):
        generator.generate(first, _bundle(frames=8))
    with pytest.raises(DataError, match="multiple of 16"):
        generator.generate(first, _bundle(size=(40, 48)))
    with pytest.raises(DataError, match="lacks conditions"):
        generator.generate(first, _bundle(names=("depth", "seg_mask")))


def test_pipeline_on_dexycb_sample(generator, sample_dir, tmp_path):
    """9 frames at 32x48 from the real DexYCB sample conditions (resampled from 49x480x720 / 384x640)."""
    from data_tools.io.video_io import read_image

    bundle = ConditionBundle.from_video_folder(sample_dir, names=generator.condition_names, num_frames=9,
                                               size=(32, 48), prompt="a hand grasps an object")
    first = read_image(f"{sample_dir}/val_image.jpg", size=(32, 48))
    pipe = generator.pipe
    out = pipe(image=torch.from_numpy(first).permute(2, 0, 1)[None].float() / 255, prompt=bundle.prompt,
               conditions={n: f"{sample_dir}/val_{n}.mp4" for n in generator.condition_names},  # paths
               height=32, width=48, num_frames=9, num_inference_steps=2, output_type="np",
               generator=torch.Generator().manual_seed(0), max_sequence_length=16).frames[0]
    assert out.shape == (9, 32, 48, 3) and 0 <= out.min() and out.max() <= 1
    # the same conditions given as uint8 arrays (read the same way) give the same video
    video = generator.generate(first, bundle, seed=0, num_inference_steps=2)
    assert np.abs(video.astype(int) - np.round(out * 255).astype(int)).max() <= 1


def test_ddim_scheduler_and_conditions_matter():
    gen = MotionGenerator.load(TINY, ["generate.scheduler=ddim"])
    with torch.no_grad():
        for p in gen.pipe.transformer.branch_parameters():
            p.add_(torch.randn_like(p) * 0.2)
    first = np.full((32, 48, 3), 90, np.uint8)
    a = gen.generate(first, _bundle(), seed=0, num_inference_steps=2)
    other = _bundle()
    other.conditions["depth"] = 255 - other.conditions["depth"]
    b = gen.generate(first, other, seed=0, num_inference_steps=2)
    assert type(gen.pipe.scheduler).__name__ == "CogVideoXDDIMScheduler"
    assert not np.array_equal(a, b)


def test_infer_cli_writes_video_and_side_by_side(sample_dir, tmp_path):
    from data_tools.io.video_io import read_video
    from motion_gen.infer import main

    main(["--config", TINY, "--conditions", sample_dir, "--out", str(tmp_path / "out"), "--steps", "1",
          "--prompt", "a hand grasps an object"])
    video = read_video(tmp_path / "out" / "video.mp4")
    side = read_video(tmp_path / "out" / "side_by_side.mp4")
    assert video.shape == (9, 32, 48, 3)
    assert side.shape == (9, 32, 48 * 5, 3)  # 3 conditions | ground-truth video | generated
    assert (tmp_path / "out" / "prompt.txt").read_text() == "a hand grasps an object\n"


def test_condition_free_model_takes_a_bundle_with_only_the_video():
    """The ablation's "none" model: the bundle carries no condition, its (T, H, W) comes from the video."""
    torch.manual_seed(0)
    plain = MotionGenerator.load(TINY, overrides=["model.condition_names=[]"])
    assert plain.condition_names == []
    video = np.zeros((9, 32, 48, 3), np.uint8)
    bundle = ConditionBundle({}, prompt="a hand", video=video)
    assert bundle.shape == (9, 32, 48)
    out = plain.generate(video[0], bundle, num_inference_steps=1)
    assert out.shape == (9, 32, 48, 3)
    with pytest.raises(DataError, match="has no videos"):
        ConditionBundle({}).shape  # noqa: B018


def test_cached_prompt_embeddings_give_the_same_video(generator):
    """encode_prompts (T5 run once and freed) + a pipeline without T5 == the pipeline encoding the prompt itself."""
    from motion_gen.generator import build_pipeline, encode_prompts

    first = np.full((32, 48, 3), 128, np.uint8)
    expected = generator.generate(first, _bundle(), seed=3, num_inference_steps=2)
    embeds = encode_prompts(generator.cfg, _bundle().prompt, "cpu", generator.pipe.transformer)
    assert embeds["prompt_embeds"].shape == (1, 16, 32) and embeds["negative_prompt_embeds"].shape == (1, 16, 32)
    no_t5 = MotionGenerator(generator.cfg, build_pipeline(generator.cfg, "cpu", generator.pipe.transformer,
                                                          text_encoder=False))
    assert no_t5.pipe.text_encoder is None
    assert np.array_equal(no_t5.generate(first, _bundle(), seed=3, num_inference_steps=2, prompt_embeds=embeds),
                          expected)


def test_cpu_offload_encodes_conditions_on_the_execution_device(generator):
    """With model CPU offload the VAE sits on CPU until its hook moves it; the condition frames must go to the
    pipeline's execution device (here "meta", so the hook's move is visible on a CPU machine), not vae.device."""
    from accelerate import cpu_offload_with_hook

    from motion_gen.generator import build_pipeline

    pipe = build_pipeline(generator.cfg, "cpu")
    hook = None
    for name in pipe.model_cpu_offload_seq.split("->"):  # what enable_model_cpu_offload does, for device "meta"
        _, hook = cpu_offload_with_hook(getattr(pipe, name), "meta", prev_module_hook=hook)
    assert pipe.vae.device.type == "cpu" and pipe._execution_device.type == "meta"
    conditions = {n: np.zeros((9, 32, 48, 3), np.uint8) for n in generator.condition_names}
    latents = pipe.encode_conditions(conditions, 9, 32, 48)
    c = generator.cfg.model.tiny.latent_channels
    assert all(v.device.type == "meta" and tuple(v.shape) == (1, 3, 2 * c, 4, 6) for v in latents.values())


def _real_size_transformer():
    """The CogVideoX-5b-I2V condition transformer on the meta device (no memory): learned positional embeddings
    for 49 frames at 480x720."""
    from accelerate import init_empty_weights

    from motion_gen.bench import COGVIDEOX_5B_I2V
    from motion_gen.model import CogVideoXConditionTransformer

    with init_empty_weights(include_buffers=True):
        model = CogVideoXConditionTransformer.from_config(
            {**COGVIDEOX_5B_I2V, "condition_names": ["hand_keypoints", "depth", "seg_mask"], "num_condition_blocks": 12})
    model._materialise_branch_linears(torch.device("meta"), torch.bfloat16)
    return model.to(torch.bfloat16).eval()


class _MetaPipe:
    """Stands in for the pipeline: runs the real-size transformer on meta tensors at the latent shape the real
    pipeline would use for the asked frames/size, and returns black frames; records what it was asked."""

    _execution_device = torch.device("cpu")
    vae_scale_factor_spatial = 8  # what the pipeline derives from the released VAE's config

    def __init__(self, transformer):
        self.transformer, self.calls = transformer, []

    def __call__(self, num_frames, height, width, conditions, **kwargs):
        from motion_gen.bench import _inputs

        self.calls.append(dict(num_frames=num_frames, size=(height, width),
                               condition_frames={n: len(v) for n, v in conditions.items()}))
        config = self.transformer.config
        latent_frames = (num_frames - 1) // 4 + 1
        inputs, latents = _inputs(config, 1, latent_frames, height // 8, width // 8,
                                  config.condition_names, "meta", torch.bfloat16)
        with torch.no_grad():
            out = self.transformer(conditions=latents, **inputs).sample
        assert out.shape == (1, latent_frames, 16, height // 8, width // 8)
        frames = np.zeros((1, num_frames, height, width, 3), np.float32)
        return type("Output", (), {"frames": frames})()


def test_real_size_learned_embeddings_run_at_49_frames(monkeypatch, caplog):
    """A 17-frame request on CogVideoX-5b-I2V runs the model at its 49 frames (learned positional embeddings,
    never recomputed sin/cos) and resamples the video back to 17 frames, with a log line."""
    from diffusers.models.embeddings import CogVideoXPatchEmbed

    from motion_gen.config import MotionConfig

    transformer = _real_size_transformer()
    sincos = []
    original = CogVideoXPatchEmbed._get_positional_embeddings
    monkeypatch.setattr(CogVideoXPatchEmbed, "_get_positional_embeddings",
                        lambda self, *a, **k: sincos.append(a) or original(self, *a, **k))
    pipe = _MetaPipe(transformer)
    gen = MotionGenerator(MotionConfig(), pipe)
    assert (gen.fixed_frames, gen.fixed_size) == (49, (480, 720))
    bundle = _bundle(frames=17, size=(480, 720))
    with caplog.at_level("INFO", logger="motion_gen.generator"):
        video = gen.generate(np.zeros((480, 720, 3), np.uint8), bundle, num_inference_steps=1)
    assert video.shape == (17, 480, 720, 3)
    assert pipe.calls == [dict(num_frames=49, size=(480, 720), condition_frames={n: 49 for n in gen.condition_names})]
    assert "runs at 49 frames only" in caplog.text
    assert not sincos  # the learned table was used as trained
    # the control: the same transformer asked for 17 frames directly recomputes sin/cos embeddings
    pipe(num_frames=17, height=480, width=720, conditions=bundle.conditions)
    assert sincos and sincos[0][2] == 17


def test_guidance_on_conditions_contrasts_zero_conditions_under_the_same_prompt(generator):
    """guidance_on=conditions: every denoiser call sees a doubled batch whose first (unconditional) half has
    all-zero condition inputs and whose text is the prompt in both halves; with cached embeddings too."""
    import dataclasses

    from motion_gen.generator import build_pipeline, encode_prompts

    seen = []

    def record(module, args, kwargs):
        seen.append((kwargs["encoder_hidden_states"].clone(),
                     {n: v.clone() for n, v in module._bound_conditions.items()}))

    cfg = dataclasses.replace(generator.cfg, generate=dataclasses.replace(generator.cfg.generate,
                                                                          guidance_on="conditions"))
    guided = MotionGenerator(cfg, generator.pipe)
    first = np.full((32, 48, 3), 128, np.uint8)
    handle = generator.pipe.transformer.register_forward_pre_hook(record, with_kwargs=True)
    try:
        video = guided.generate(first, _bundle(), seed=3, num_inference_steps=2, guidance_scale=3.0)
        embeds = encode_prompts(cfg, _bundle().prompt, "cpu", generator.pipe.transformer)
        assert embeds["negative_prompt_embeds"] is None  # no negative prompt to encode
        no_t5 = MotionGenerator(cfg, build_pipeline(cfg, "cpu", generator.pipe.transformer, text_encoder=False))
        cached = no_t5.generate(first, _bundle(), seed=3, num_inference_steps=2, guidance_scale=3.0,
                                prompt_embeds=embeds)
    finally:
        handle.remove()
    assert len(seen) == 4  # two steps, two generations
    for text, conditions in seen:
        assert text.shape[0] == 2 and torch.equal(text[0], text[1])
        assert sorted(conditions) == ["depth", "hand_keypoints", "seg_mask"]
        for v in conditions.values():
            assert v.shape[0] == 2 and torch.count_nonzero(v[0]) == 0 and torch.count_nonzero(v[1]) > 0
    assert np.array_equal(video, cached)
    # the contrast matters: text guidance at the same scale gives another video; scale 1 runs one pass, unguided
    assert not np.array_equal(video, generator.generate(first, _bundle(), seed=3, num_inference_steps=2,
                                                        guidance_scale=3.0))
    assert np.array_equal(guided.generate(first, _bundle(), seed=3, num_inference_steps=2, guidance_scale=1.0),
                          generator.generate(first, _bundle(), seed=3, num_inference_steps=2, guidance_scale=1.0))


def test_guidance_on_conditions_refuses_a_negative_prompt_and_unknown_modes(generator):
    with pytest.raises(DataError, match="leave negative_prompt empty"):
        generator.pipe(image=torch.zeros(1, 3, 32, 48), prompt="a", negative_prompt="blurry",
                       conditions=_bundle().conditions, height=32, width=48, num_frames=9, num_inference_steps=1,
                       guidance_scale=2.0, guidance_on="conditions")
    with pytest.raises(DataError, match="guidance_on must be"):
        generator.pipe(image=torch.zeros(1, 3, 32, 48), prompt="a", conditions=_bundle().conditions, height=32,
                       width=48, num_frames=9, num_inference_steps=1, guidance_on="image")


def test_guidance_on_conditions_without_conditions_is_one_unguided_pass():
    """The ablation's "none" model under guidance_on=conditions: batch-1 calls (no text CFG sneaking in), the
    same video as scale 1, with the prompt or with cached embeddings (which hold no negative)."""
    from motion_gen.generator import build_pipeline, encode_prompts

    torch.manual_seed(0)
    plain = MotionGenerator.load(TINY, overrides=["model.condition_names=[]", "generate.guidance_on=conditions"])
    bundle = ConditionBundle({}, prompt="a hand", video=np.zeros((9, 32, 48, 3), np.uint8))
    first = np.full((32, 48, 3), 128, np.uint8)
    batches = []
    handle = plain.pipe.transformer.register_forward_pre_hook(
        lambda module, args, kwargs: batches.append(kwargs["hidden_states"].shape[0]), with_kwargs=True)
    try:
        guided = plain.generate(first, bundle, seed=1, num_inference_steps=2, guidance_scale=1.5)
        embeds = encode_prompts(plain.cfg, bundle.prompt, "cpu", plain.pipe.transformer)
        no_t5 = MotionGenerator(plain.cfg, build_pipeline(plain.cfg, "cpu", plain.pipe.transformer, text_encoder=False))
        cached = no_t5.generate(first, bundle, seed=1, num_inference_steps=2, guidance_scale=1.5, prompt_embeds=embeds)
    finally:
        handle.remove()
    assert batches == [1, 1, 1, 1]
    assert np.array_equal(guided, plain.generate(first, bundle, seed=1, num_inference_steps=2, guidance_scale=1.0))
    assert np.array_equal(guided, cached)


def test_condition_guidance_orders_halves_for_a_batch_of_prompts():
    """Two prompts, one condition set: [zero, zero, c, c] as diffusers' [negatives, positives], prompts reused."""
    from motion_gen.pipeline import CogVideoXConditionPipeline

    c = torch.arange(1.0, 7.0).view(1, 1, 6, 1, 1)
    latents, kwargs = CogVideoXConditionPipeline.condition_guidance({"depth": c}, ["a", "b"], {"guidance_scale": 2.0})
    assert kwargs["negative_prompt"] == ["a", "b"]
    out = latents["depth"]
    assert out.shape[0] == 4 and torch.count_nonzero(out[:2]) == 0
    assert torch.equal(out[2], c[0]) and torch.equal(out[3], c[0])
    with pytest.raises(DataError, match="num_videos_per_prompt=1"):
        CogVideoXConditionPipeline.condition_guidance({"depth": c}, "a", {"guidance_scale": 2.0,
                                                                          "num_videos_per_prompt": 2})
    with pytest.raises(DataError, match="condition 'depth' batch 2 does not divide 3"):
        CogVideoXConditionPipeline.condition_guidance({"depth": torch.cat([c, c])}, ["a", "b", "c"],
                                                      {"guidance_scale": 2.0})


def test_repeat_to_batch_tiles_whole_batches():
    from motion_gen.model import repeat_to_batch

    two = torch.tensor([[1.0], [2.0]])
    assert repeat_to_batch(two, 6).flatten().tolist() == [1, 2, 1, 2, 1, 2]
    assert repeat_to_batch(two, 2) is two
    with pytest.raises(ValueError, match="stream batch 2 does not divide 3"):
        repeat_to_batch(two, 3, "stream")
