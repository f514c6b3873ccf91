"""The training runtime both trainers share (finetrainers style).

A model family describes itself as a ``TrainingSpec`` (which module trains, how a batch becomes a loss, how to
validate and save); ``Trainer`` owns everything else: accelerate set-up (CPU, one GPU, DDP, DeepSpeed ZeRO-2),
AdamW, LR schedules with warm-up, gradient accumulation and clipping, mixed precision, a per-step jsonl log,
checkpoints every K steps with resume from the latest, periodic validation and the final weights.

On N processes (DDP or ZeRO-2) the runtime guarantees:

* effective batch = ``batch_size x grad_accum x N`` samples per optimizer step; every process gets different
  samples (one shuffled order per epoch, ``seed + epoch``, the same on every process and after a resume);
* the LR schedule is a function of the optimizer step only: it is stepped once per optimizer step, never once
  per process (accelerate's default), so 1 and N processes follow the same LR curve over ``max_steps``;
* process ``r`` seeds ``random``/numpy/torch/CUDA with ``seed + r`` (accelerate's ``device_specific`` seed), so
  noise, timesteps and dropout differ between processes; checkpoints hold every process's RNG states, so a
  resumed run continues the same streams (validation on rank 0 never touches them);
* too few samples for one batch per process is an error naming dataset size, batch size and world size;
* ``OptimizerConfig.max_grad_norm`` becomes DeepSpeed's ``gradient_clipping`` (0 disables clipping).

Checkpoints hold only what is trained: the parameters with ``requires_grad``, their optimizer state, the LR
scheduler, every process's RNG states and the step. The frozen weights (e.g. a 5B base transformer) are rebuilt
from the run config on resume and by the converters. accelerate's own path filters through a save-state pre-hook
and loads with ``strict=False`` after a load pre-hook checked that every trained weight is there; under DeepSpeed
``save_checkpoint(exclude_frozen_parameters=True)`` and ``load_checkpoint(load_module_strict=False)`` do the same.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import re
import shutil
from typing import Any, Iterable, Iterator

import numpy as np

import torch
from torch.utils.data import DataLoader, Dataset

from data_tools.io.atomic import umask_permissions, write_json
from data_tools.errors import DataError, read_json_file, require_paths

logger = logging.getLogger(__name__)
CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


@dataclasses.dataclass
class OptimizerConfig:
    """AdamW and LR schedule (defaults as the reference motion stage)."""

    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 1e-3
    eps: float = 1e-8
    max_grad_norm: float = 1.0
    scheduler: str = "cosine_with_restarts"  # any diffusers.optimization scheduler name
    warmup_steps: int = 100
    num_cycles: int = 1


@dataclasses.dataclass
class LoopConfig:
    """Steps, batching, precision, checkpointing and logging of one run."""

    output_dir: str = "outputs/train"
    max_steps: int = 1000
    batch_size: int = 1
    grad_accum: int = 1
    mixed_precision: str = "no"  # "no" | "bf16" | "fp16"; CPU runs fall back to "no" unless cpu_bf16
    seed: int = 0
    checkpoint_every: int = 500
    checkpoints_total_limit: int | None = 3
    validate_every: int = 0  # 0: never
    log_every: int = 10
    resume: str | None = "latest"  # "latest", a checkpoint folder, or null
    num_workers: int = 0
    deepspeed_config: str | None = None  # a DeepSpeed json (ZeRO-2) when not launched through accelerate's config
    cpu: bool = False
    # CPU runs keep mixed_precision=bf16 (torch autocast on CPU): 1.4-1.5x faster steps where the CPU has AVX512-BF16
    # or AMX (measured on the toy motion model), much slower where it has neither
    cpu_bf16: bool = False
    # seconds a rank waits in a collective before the run is aborted: rank 0's validation at real size (minutes of
    # guided sampling) runs while the others wait, longer than torch's default of 10 minutes
    process_group_timeout_s: float = 3600.0

    RANGES = {"max_steps": (1, None), "batch_size": (1, None), "grad_accum": (1, None), "checkpoint_every": (0, None),
              "validate_every": (0, None), "log_every": (0, None), "num_workers": (0, None),
              "process_group_timeout_s": (1, None)}

    def required_paths(self) -> dict[str, str]:
        """The input paths of this loop (``{config key: path}``) that must exist before training starts."""
        paths = {"train.loop.deepspeed_config": self.deepspeed_config}
        if self.resume and self.resume != "latest":
            paths["train.loop.resume"] = self.resume
        return {k: v for k, v in paths.items() if v}


class TrainingSpec:
    """What a model family provides to ``Trainer``. Override the methods marked as required."""

    def setup(self, accelerator) -> None:
        """Move frozen components to ``accelerator.device`` / weight dtype (called once, before prepare)."""

    def trainable_module(self) -> torch.nn.Module:  # required
        """The module whose parameters with ``requires_grad`` are optimised (frozen parts may live inside)."""
        raise NotImplementedError

    def compute_loss(self, model: torch.nn.Module, batch: Any, accelerator) -> torch.Tensor:  # required
        """Loss of one micro-batch; ``model`` is the prepared (possibly wrapped) trainable module."""
        raise NotImplementedError

    def collate(self, items: list) -> Any:
        """Turn dataset items into a batch (default: torch's default collate)."""
        return torch.utils.data.default_collate(items)

    def validate(self, model: torch.nn.Module, accelerator, step: int, output_dir: str) -> None:
        """Write validation outputs under ``output_dir`` (main process only)."""

    def save_weights(self, model: torch.nn.Module, output_dir: str) -> None:
        """Save the unwrapped trainable module (default: ``save_pretrained`` in safetensors)."""
        model.save_pretrained(output_dir, safe_serialization=True)


def launcher_deepspeed_config() -> str | None:
    """The DeepSpeed json named by ``accelerate launch`` (``distributed_type: DEEPSPEED``), or None."""
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() != "true":
        return None
    path = os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE", "none")
    return None if path == "none" else path


def deepspeed_config(path: str, loop: LoopConfig, optim: OptimizerConfig) -> dict:
    """A DeepSpeed json with the keys this run decides resolved: micro-batch, accumulation and clipping.

    ``gradient_clipping: "auto"`` becomes ``optim.max_grad_norm`` (0: no clipping); accelerate would otherwise fill
    it with its own 1.0. A number in the json that disagrees with ``max_grad_norm`` is an error.
    """
    if not os.path.isfile(path):
        raise DataError(path, "DeepSpeed config does not exist")
    with open(path, encoding="utf-8") as f:
        try:
            config = json.load(f)
        except json.JSONDecodeError as exc:
            raise DataError(path, f"invalid JSON ({exc.msg})") from None
    clipping = config.get("gradient_clipping", "auto")
    if clipping != "auto" and float(clipping) != float(optim.max_grad_norm):
        raise DataError(path, f"gradient_clipping is {clipping} but train.optim.max_grad_norm is "
                              f"{optim.max_grad_norm}; set it to \"auto\" to follow the training config")
    config["gradient_clipping"] = float(optim.max_grad_norm)
    # The batch keys resolved here so that DeepSpeed derives the global batch from its own world size
    # (the same under accelerate launch and torchrun).
    config["train_micro_batch_size_per_gpu"] = loop.batch_size
    config["gradient_accumulation_steps"] = loop.grad_accum
    config.pop("train_batch_size", None)
    return config


def deepspeed_plugin(loop: LoopConfig, optim: OptimizerConfig):
    """accelerate's ``DeepSpeedPlugin`` for ``loop.deepspeed_config`` or the launcher's json, or None (no DeepSpeed)."""
    from accelerate.utils import DeepSpeedPlugin

    path = loop.deepspeed_config or launcher_deepspeed_config()
    if not path:
        return None
    if loop.cpu or not torch.cuda.is_available():
        raise DataError(path, "DeepSpeed training needs CUDA: accelerate has no CPU DeepSpeed "
                              "backend; on CPU train with DDP instead (torchrun --nproc_per_node N)")
    config = deepspeed_config(path, loop, optim)
    return DeepSpeedPlugin(hf_ds_config=config, gradient_clipping=config["gradient_clipping"])


def build_accelerator(loop: LoopConfig, optim: OptimizerConfig):
    """An ``Accelerator`` for CPU, one GPU, DDP or DeepSpeed (from the launcher or ``loop.deepspeed_config``).

    The LR scheduler it prepares steps once per call (``step_scheduler_with_optimizer=False``; ``Trainer`` calls it
    once per optimizer step) and the sampler shuffles with ``loop.seed + epoch`` on every process.
    """
    from datetime import timedelta

    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, InitProcessGroupKwargs, ProjectConfiguration

    precision = loop.mixed_precision
    cuda = torch.cuda.is_available() and not loop.cpu
    if precision != "no" and not cuda and not (precision == "bf16" and loop.cpu_bf16):
        logger.warning("mixed_precision=%s requested without CUDA: training in fp32", precision)
        precision = "no"
    return Accelerator(
        gradient_accumulation_steps=loop.grad_accum, mixed_precision=precision, cpu=loop.cpu,
        deepspeed_plugin=deepspeed_plugin(loop, optim), step_scheduler_with_optimizer=False,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=loop.seed),
        project_config=ProjectConfiguration(project_dir=loop.output_dir),
        kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(seconds=loop.process_group_timeout_s))],
    )


def check_shards(dataset_size: int, batch_size: int, world_size: int) -> int:
    """Batches per process and epoch (batches are dropped, never padded); DataError when that is zero."""
    per_process = dataset_size // batch_size // world_size
    if per_process == 0:
        raise DataError(None, f"dataset has {dataset_size} samples, fewer than batch_size {batch_size} x world_size "
                              f"{world_size} = {batch_size * world_size}: no process would get a batch")
    return per_process


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block (validation) without moving this process's ``random``/numpy/torch/CUDA random streams."""
    states = random.getstate(), np.random.get_state()
    # this process's GPU only: touching the others would create a CUDA context on every GPU from every rank
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(states[0])
            np.random.set_state(states[1])


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """AdamW over ``params`` (only those that require grad)."""
    params = [p for p in params if p.requires_grad]
    if not params:
        raise DataError(None, "no trainable parameters: the spec's trainable module has everything frozen")
    return torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay, eps=cfg.eps)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimizerConfig, max_steps: int):
    """A diffusers LR schedule with warm-up (``cosine_with_restarts`` by default)."""
    from diffusers.optimization import get_scheduler

    return get_scheduler(cfg.scheduler, optimizer, num_warmup_steps=cfg.warmup_steps,
                         num_training_steps=max_steps, num_cycles=cfg.num_cycles)


def trainable_names(model: torch.nn.Module) -> set[str]:
    """Names of the parameters of ``model`` (as wrapped: DDP's ``module.`` included) that are trained."""
    return {name for name, p in model.named_parameters() if p.requires_grad}


def keep_trained_weights(models: list, weights: list[dict], output_dir: str) -> None:
    """accelerate save-state pre-hook: drop frozen parameters and buffers from the state dicts about to be saved."""
    for model, state in zip(models, weights):
        keep = trainable_names(model)
        for key in [k for k in state if k not in keep]:
            del state[key]


def saved_weight_names(folder: str, index: int = 0) -> set[str]:
    """Tensor names in accelerate's model file ``index`` of a checkpoint folder (safetensors or torch.save)."""
    suffix = f"_{index}" if index else ""
    path = os.path.join(folder, f"model{suffix}.safetensors")
    if os.path.isfile(path):
        from safetensors import safe_open

        with safe_open(path, "pt") as f:
            return set(f.keys())
    path = os.path.join(folder, f"pytorch_model{suffix}.bin")
    if not os.path.isfile(path):
        raise DataError(folder, f"no model weights (model{suffix}.safetensors or pytorch_model{suffix}.bin)")
    return set(torch.load(path, map_location="cpu", weights_only=True, mmap=True))


def check_trained_weights(models: list, input_dir: str) -> None:
    """accelerate load-state pre-hook: DataError unless the checkpoint holds every trained parameter (it may lack
    the frozen ones, which the run rebuilt from its config)."""
    for i, model in enumerate(models):
        missing = sorted(trainable_names(model) - saved_weight_names(input_dir, i))
        if missing:
            raise DataError(input_dir, f"checkpoint lacks {len(missing)} trained weight(s), e.g. "
                                       f"{', '.join(missing[:3])}: written by another model or configuration?")


def frozen_fingerprint(model: torch.nn.Module) -> dict:
    """``name -> [shape, dtype, float64 sum]`` of each frozen parameter: what a checkpoint that leaves them out was
    trained on (recorded in its ``trainer_state.json`` and compared on resume and conversion)."""
    return {name: [list(p.shape), str(p.dtype).removeprefix("torch."), float(torch.sum(p.detach(), dtype=torch.float64))]
            for name, p in model.named_parameters() if not p.requires_grad}


def fingerprint_differences(recorded: dict, current: dict) -> list[str]:
    """The frozen parameters whose name, shape, dtype or sum (relative 1e-6) differ, each with what differs."""
    found = [f"{name} ({'missing' if name in recorded else 'not in the checkpoint run'})"
             for name in sorted(set(recorded) ^ set(current))]
    for name in sorted(set(recorded) & set(current)):
        (shape, dtype, total), (shape_now, dtype_now, total_now) = recorded[name], current[name]
        if shape != shape_now or dtype != dtype_now:
            found.append(f"{name} ({shape} {dtype} -> {shape_now} {dtype_now})")
        elif not math.isclose(total, total_now, rel_tol=1e-6, abs_tol=1e-6):
            found.append(f"{name} (values: sum {total:.6g} -> {total_now:.6g})")
    return found


def check_frozen_weights(model: torch.nn.Module, checkpoint: str) -> None:
    """DataError unless ``model``'s frozen parameters are the ones the checkpoint's run trained with (checkpoints
    without a recorded fingerprint are let through)."""
    path = os.path.join(checkpoint, "trainer_state.json")
    recorded = (read_json_file(path, "trainer state") if os.path.isfile(path) else {}).get("frozen")
    if not isinstance(recorded, dict):
        return
    differ = fingerprint_differences(recorded, frozen_fingerprint(model))
    if differ:
        raise DataError(checkpoint, f"the frozen weights differ from those this checkpoint was trained with "
                                    f"({len(differ)} tensor(s), e.g. {'; '.join(differ[:3])}): another base "
                                    "(model.pretrained, model.tiny, its init_device) or dtype than the run's")


def check_deepspeed_trained_weights(model: torch.nn.Module, input_dir: str) -> None:
    """The DeepSpeed twin of ``check_trained_weights`` (accelerate gives its load pre-hook no models under DeepSpeed,
    and ``load_module_strict=False`` would skip missing keys): every trained parameter of ``model`` (unwrapped)
    must be in the checkpoint's ``*/mp_rank_00_model_states.pt``."""
    import glob

    files = sorted(glob.glob(os.path.join(input_dir, "*", "mp_rank_00_model_states.pt")))
    if not files:
        raise DataError(input_dir, "no DeepSpeed model states (*/mp_rank_00_model_states.pt)")
    # DeepSpeed's own file (it loads it the same way): tensors plus its config and version objects
    saved = torch.load(files[0], map_location="cpu", weights_only=False, mmap=True).get("module") or {}
    missing = sorted(trainable_names(model) - set(saved))
    if missing:
        raise DataError(files[0], f"checkpoint lacks {len(missing)} trained weight(s), e.g. {', '.join(missing[:3])}: "
                                  "written by another model or configuration?")


def state_kwargs(accelerator, save: bool) -> dict:
    """Keyword arguments of ``save_state`` / ``load_state`` that leave frozen weights out of checkpoints."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        return {"exclude_frozen_parameters": True} if save else {"load_module_strict": False}
    return {} if save else {"strict": False}  # the save side is filtered by keep_trained_weights


def list_checkpoints(output_dir: str) -> list[tuple[int, str]]:
    """``(step, path)`` of complete checkpoints under ``output_dir/checkpoints``, oldest first."""
    folder = os.path.join(output_dir, "checkpoints")
    found = []
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            match = CHECKPOINT_RE.match(name)
            path = os.path.join(folder, name)
            if match and os.path.isfile(os.path.join(path, "trainer_state.json")):
                found.append((int(match[1]), path))
    return sorted(found)


def latest_checkpoint(output_dir: str) -> str | None:
    """Path of the newest complete checkpoint, or None."""
    found = list_checkpoints(output_dir)
    return found[-1][1] if found else None


def read_train_log(output_dir: str) -> list[dict]:
    """The per-step records ``{"step", "loss", "lr"}`` written to ``train_log.jsonl``."""
    path = os.path.join(output_dir, "train_log.jsonl")
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class Trainer:
    """Runs a ``TrainingSpec`` over a dataset with the shared loop."""

    def __init__(self, spec: TrainingSpec, dataset: Dataset, loop: LoopConfig, optim: OptimizerConfig,
                 run_config: dict | None = None):
        self.spec, self.dataset, self.loop, self.optim = spec, dataset, loop, optim
        self.run_config = run_config or {}

    def _dataloader(self, world_size: int) -> DataLoader:
        check_shards(len(self.dataset), self.loop.batch_size, world_size)
        return DataLoader(self.dataset, batch_size=self.loop.batch_size, shuffle=True, drop_last=True,
                          collate_fn=self.spec.collate, num_workers=self.loop.num_workers,
                          generator=torch.Generator().manual_seed(self.loop.seed))

    def _set_epoch(self, dataloader, epoch: int) -> None:
        """Shuffle order ``seed + epoch``; a dataset with ``set_epoch`` (per-epoch item randomness) is told too."""
        dataloader.set_epoch(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def _resume_path(self) -> str | None:
        resume = self.loop.resume
        if not resume:
            return None
        if resume == "latest":
            return latest_checkpoint(self.loop.output_dir)
        if not os.path.isfile(os.path.join(resume, "trainer_state.json")):
            raise DataError(resume, "not a complete checkpoint (trainer_state.json missing)")
        return resume

    def _save_checkpoint(self, accelerator, step: int) -> None:
        final = os.path.join(self.loop.output_dir, "checkpoints", f"checkpoint-{step}")
        partial = final + ".partial"
        if accelerator.is_main_process and os.path.isdir(partial):
            shutil.rmtree(partial)
        accelerator.wait_for_everyone()
        accelerator.save_state(partial, **state_kwargs(accelerator, save=True))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            umask_permissions(partial)
            write_json(os.path.join(partial, "trainer_state.json"), {"step": step, "config": self.run_config,
                                                                     "frozen": self._frozen, "cwd": os.getcwd()})
            if os.path.isdir(final):
                shutil.rmtree(final)
            os.replace(partial, final)
            limit = self.loop.checkpoints_total_limit
            if limit:
                for _, old in list_checkpoints(self.loop.output_dir)[:-limit]:
                    shutil.rmtree(old, ignore_errors=True)
            logger.info("saved checkpoint %s", final)
        accelerator.wait_for_everyone()

    def train(self) -> dict:
        """Train to ``loop.max_steps`` optimizer steps (resuming when a checkpoint exists); returns a summary."""
        from accelerate.utils import set_seed
        from tqdm.auto import tqdm

        loop = self.loop
        require_paths(loop.required_paths(), "training")
        accelerator = build_accelerator(loop, self.optim)
        set_seed(loop.seed, device_specific=True)  # process r: seed + r (restored per process on resume)
        os.makedirs(loop.output_dir, exist_ok=True)
        dataloader = self._dataloader(accelerator.num_processes)
        self.spec.setup(accelerator)
        module = self.spec.trainable_module()
        self._frozen = frozen_fingerprint(module)   # what the checkpoints leave out, checked when they are read
        optimizer = build_optimizer(module.parameters(), self.optim)
        scheduler = build_scheduler(optimizer, self.optim, loop.max_steps)
        model, optimizer, dataloader, scheduler = accelerator.prepare(module, optimizer, dataloader, scheduler)
        trainable = [p for p in model.parameters() if p.requires_grad]
        accelerator.register_save_state_pre_hook(keep_trained_weights)
        accelerator.register_load_state_pre_hook(check_trained_weights)

        step = 0
        resume = self._resume_path()
        if resume:
            check_frozen_weights(module, resume)
            if accelerator.distributed_type == "DEEPSPEED":
                check_deepspeed_trained_weights(module, resume)
            accelerator.load_state(resume, **state_kwargs(accelerator, save=False))
            with open(os.path.join(resume, "trainer_state.json"), encoding="utf-8") as f:
                step = int(json.load(f)["step"])
            logger.info("resumed from %s at step %d", resume, step)
        # accelerate ends an accumulation at the end of each epoch: an epoch is ceil(batches / grad_accum) steps
        steps_per_epoch = math.ceil(len(dataloader) / loop.grad_accum)
        epoch, skip = step // steps_per_epoch, (step % steps_per_epoch) * loop.grad_accum
        log_path = os.path.join(loop.output_dir, "train_log.jsonl")
        progress = tqdm(total=loop.max_steps, initial=step, desc="train", disable=not accelerator.is_main_process)
        losses, lrs = [], []
        running = 0.0
        micro = 0
        model.train()
        while step < loop.max_steps:
            self._set_epoch(dataloader, epoch)
            epoch_loader = accelerator.skip_first_batches(dataloader, skip) if skip else dataloader
            skip = 0
            for batch in epoch_loader:
                with accelerator.accumulate(model):
                    loss = self.spec.compute_loss(model, batch, accelerator)
                    if not torch.isfinite(loss):
                        raise FloatingPointError(f"non-finite loss {loss.item()} at step {step}")
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and self.optim.max_grad_norm:
                        accelerator.clip_grad_norm_(trainable, self.optim.max_grad_norm)
                    optimizer.step()
                    lr = scheduler.get_last_lr()[0]  # the LR this step used
                    if accelerator.sync_gradients and not optimizer.step_was_skipped:
                        scheduler.step()  # once per optimizer step, whatever the number of processes
                    optimizer.zero_grad(set_to_none=True)
                running += accelerator.gather(loss.detach().float().reshape(1)).mean().item()
                micro += 1
                if not accelerator.sync_gradients:
                    continue
                step += 1
                mean_loss = running / micro
                running, micro = 0.0, 0
                losses.append(mean_loss)
                lrs.append(lr)
                progress.update(1)
                progress.set_postfix(loss=f"{mean_loss:.4f}")
                if accelerator.is_main_process:
                    with open(log_path, "a", encoding="utf-8") as f:
                        f.write(json.dumps({"step": step, "loss": mean_loss, "lr": lr}) + "\n")
                    if loop.log_every and step % loop.log_every == 0:
                        logger.info("step %d loss %.5f lr %.3g", step, mean_loss, lr)
                if loop.checkpoint_every and (step % loop.checkpoint_every == 0 or step == loop.max_steps):
                    self._save_checkpoint(accelerator, step)
                if loop.validate_every and step % loop.validate_every == 0 and accelerator.is_main_process:
                    model.eval()
                    with torch.no_grad(), preserved_rng():
                        self.spec.validate(accelerator.unwrap_model(model), accelerator, step,
                                           os.path.join(loop.output_dir, "validation", f"step-{step}"))
                    model.train()
                if step >= loop.max_steps:
                    break
            epoch += 1
        progress.close()
        accelerator.wait_for_everyone()
        final_dir = os.path.join(loop.output_dir, "final")
        if accelerator.is_main_process:
            self.spec.save_weights(accelerator.unwrap_model(model), final_dir)
            umask_permissions(final_dir)
            write_json(os.path.join(final_dir, "trainer_state.json"), {"step": step, "config": self.run_config})
        accelerator.wait_for_everyone()
        summary = {"step": step, "losses": losses, "lrs": lrs, "final_dir": final_dir,
                   "world_size": accelerator.num_processes, "distributed_type": str(accelerator.distributed_type)}
        accelerator.end_training()
        return summary


def loss_ratio(losses: list[float], window: int = 3) -> float:
    """Mean of the first ``window`` losses divided by the mean of the last ``window`` (> 1 means it dropped)."""
    if len(losses) < 2 * window:
        raise ValueError(f"need at least {2 * window} losses, got {len(losses)}")
    first = sum(losses[:window]) / window
    last = sum(losses[-window:]) / window
    return first / last if last > 0 else math.inf
