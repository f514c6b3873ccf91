"""An estimate of seconds per generated video and videos per GPU-hour, from published anchor figures (not measured:
no GPU run of the release has been recorded yet; docs/benchmarks.md says when one is).

Anchors (one H100 80 GB, bf16 weights):
- CogVideoX-5B I2V, 49 x 480 x 720, 50 steps with classifier-free guidance: 90-112 s per video (figures published
  by the CogVideoX authors and users); taken as 100 s. The condition branch runs copies of the first N of the 42
  blocks on the condition tokens: x (1 + N / 42), N = 12 as in the reference's scripts. Four condition videos and
  the first frame are VAE-encoded and one video decoded: about 10 s more.
- FLUX.1-dev, 28 steps at 1024 x 1024 (4096 image tokens): about 5 s; scaled by image tokens; the two ControlNet
  branches (2 double blocks each beside 19 double + 38 single) add about 10 %. Compute in float32 (pam_release's
  ``model.compute_dtype``, as the reference) runs at dense FP32 rate: H100 SXM peaks 67 TFLOPS FP32 against 989
  dense BF16, a factor 14.8.
- Scaling other settings: linear in steps and in tokens (attention's quadratic part is ignored: an underestimate
  above the anchor size). Render (CPU), QC (MediaPipe on CPU, about 40 ms per frame) and writing: measured on CPU.
"""
from __future__ import annotations

MOTION_ANCHOR = {"seconds": 100.0, "steps": 50, "frames": 49, "height": 480, "width": 720}
MOTION_BRANCH_BLOCKS, MOTION_BLOCKS = 12, 42
MOTION_VAE_S = 10.0
FLUX_ANCHOR = {"seconds": 5.0, "steps": 28, "tokens": 4096}
FLUX_BRANCH_FACTOR = 1.10
FP32_SLOWDOWN = 989 / 67
CPU_SECONDS_PER_FRAME = {"render": 0.15, "qc": 0.04, "write": 0.05}


def estimate_seconds(sim2real) -> dict[str, float]:
    """Seconds per video by stage on one H100 for a sim2real config (its appearance and motion configs are read,
    no weights are touched)."""
    from appearance_gen.config import AppearanceConfig
    from data_tools.io.config import load_config
    from motion_gen.config import MotionConfig

    motion = load_config(MotionConfig, sim2real.motion_config, sim2real.motion_overrides).generate
    appearance = load_config(AppearanceConfig, sim2real.appearance_config, sim2real.appearance_overrides)
    frames = sim2real.num_frames or motion.num_frames
    steps = sim2real.motion_steps or motion.num_inference_steps
    a = MOTION_ANCHOR
    tokens = ((frames - 1) // 4 + 1) * motion.height * motion.width / (((a["frames"] - 1) // 4 + 1) * a["height"] * a["width"])
    motion_s = a["seconds"] * steps / a["steps"] * tokens * (1 + MOTION_BRANCH_BLOCKS / MOTION_BLOCKS) + MOTION_VAE_S
    height, width = sim2real.height or motion.height, sim2real.width or motion.width
    image_tokens = (height // 16) * (width // 16)
    steps_a = sim2real.appearance_steps or appearance.sampling.num_inference_steps
    per_image = FLUX_ANCHOR["seconds"] * steps_a / FLUX_ANCHOR["steps"] * image_tokens / FLUX_ANCHOR["tokens"]
    fp32 = (appearance.model.compute_dtype or appearance.model.dtype) in ("float32", "fp32")
    appearance_s = per_image * FLUX_BRANCH_FACTOR * (FP32_SLOWDOWN if fp32 else 1.0) * len(sim2real.seeds)
    cpu = {stage: per_frame * frames for stage, per_frame in CPU_SECONDS_PER_FRAME.items()}
    out = {"appearance_s": appearance_s, "motion_s": motion_s, **{f"{k}_s": v for k, v in cpu.items()}}
    out["total_s"] = sum(out.values())
    return {k: round(v, 1) for k, v in out.items()}


def videos_per_gpu_hour(seconds: dict[str, float]) -> float:
    return round(3600 / seconds["total_s"], 1)


def summary(sim2real, count: int) -> str:
    """One line: estimated seconds per stage, videos per GPU-hour and GPU-hours for ``count`` videos."""
    seconds = estimate_seconds(sim2real)
    rate = videos_per_gpu_hour(seconds)
    stages = ", ".join(f"{k[:-2]} {v:.0f} s" for k, v in seconds.items() if k != "total_s")
    return (f"estimate (not measured), one H100: {seconds['total_s']:.0f} s per video ({stages}); {rate} videos per "
            f"GPU-hour; {count} videos in about {count / rate:.0f} GPU-hours")
