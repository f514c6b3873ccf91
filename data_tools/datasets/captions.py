"""Captions for converted clips: template captions offline, or a vision-language model from a local folder.

Both write the clip's ``descriptions.json`` (``"prompt"``, ``"caption_source"``) and then refresh the dataset
index (split ``prompt.txt`` filelists and ``prompts.jsonl``) that the trainers read.

    python -m data_tools.datasets.captions --root OUT --template
    python -m data_tools.datasets.captions --root OUT --model /models/llava-v1.6-mistral-7b-hf --device cuda
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import time
from typing import Sequence

import numpy as np
from tqdm import tqdm

from data_tools.io.atomic import umask_permissions, write_json
from data_tools.io.cli import positive_int, setup_logging
from data_tools.datasets.index import read_index, write_index
from data_tools.datasets.runner import ClipResult, Summary
from data_tools.errors import DataError
from data_tools.datasets.hoi_dataset import read_descriptions
from data_tools.io.video_io import read_video, resample_indices

logger = logging.getLogger(__name__)

DEFAULT_QUESTION = ("Describe this image of hands interacting with objects in one or two sentences: the hands, "
                    "the objects, what the hands do, and the scene.")
TEMPLATE_SOURCE = "template"


# ----------------------------------------------------------------------------------------- template captions
def object_display_name(name: str) -> str:
    """``"006_mustard_bottle"`` -> ``"mustard bottle"`` (leading catalogue numbers and underscores removed)."""
    name = re.sub(r"^\d+[_\- ]*", "", str(name).strip())
    return " ".join(name.replace("_", " ").replace("-", " ").split()) or "object"


def _join(names: Sequence[str]) -> str:
    names = [f"a {n}" for n in names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def template_caption(objects: Sequence[str] = (), grasped: str | None = None, hand_side: str | None = None,
                     action: str | None = None, scene: str = "on a tabletop") -> str:
    """A deterministic caption from object names and an action.

    ``grasped``: the manipulated object (default: the first of ``objects``); ``hand_side``: "right", "left" or
    "both"; ``action``: a verb phrase (default "grasps the <object> and lifts it").
    """
    names = [object_display_name(o) for o in objects]
    target = object_display_name(grasped) if grasped else (names[0] if names else None)
    subject = {"left": "A left hand", "right": "A right hand", "both": "Two hands"}.get(hand_side or "", "A hand")
    if action:
        action = action.strip().rstrip(".")
        action = action[:1].lower() + action[1:]
    elif target:
        action = f"grasps the {target} and lifts it"
    else:
        action = "moves"
    others = [n for n in names if n != target]
    caption = f"{subject} {action} {scene}"
    if others:
        caption += f", next to {_join(others)}"
    return caption + ". A realistic video of a hand-object interaction."


def caption_from_descriptions(descriptions: dict) -> str:
    """Template caption from the fields converters put in ``descriptions.json``."""
    return template_caption(descriptions.get("objects", ()), descriptions.get("grasped_object"),
                            descriptions.get("hand_side"), descriptions.get("action"))


# ------------------------------------------------------------------------------------------- VLM captions
class VLMCaptioner:
    """Caption frames with an image-text-to-text model from a local folder (e.g. LLaVA-NeXT), bf16 on GPU."""

    def __init__(self, model_path: str, device: str | None = None, dtype: str = "bfloat16",
                 question: str = DEFAULT_QUESTION, max_new_tokens: int = 120):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        if not os.path.isdir(model_path):
            raise DataError(model_path, "VLM model folder does not exist (captions need a local model path)")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.question, self.max_new_tokens = question, max_new_tokens
        self.processor = AutoProcessor.from_pretrained(model_path, local_files_only=True)
        self.model = AutoModelForImageTextToText.from_pretrained(
            model_path, dtype=getattr(torch, dtype), local_files_only=True).to(self.device).eval()
        self.source = f"vlm:{os.path.basename(os.path.normpath(model_path))}"

    def _prompt(self, num_images: int) -> str:
        if getattr(self.processor, "chat_template", None):
            content = [{"type": "image"}] * num_images + [{"type": "text", "text": self.question}]
            return self.processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
        image_token = getattr(self.processor, "image_token", "<image>")
        return f"{image_token * num_images}\n{self.question}"

    def caption(self, frames: Sequence[np.ndarray]) -> str:
        """One caption for ``frames`` (RGB uint8 images), greedy decoding; whitespace collapsed."""
        import torch
        from PIL import Image

        images = [Image.fromarray(np.asarray(f)) for f in frames]
        inputs = self.processor(images=images, text=self._prompt(len(images)), return_tensors="pt").to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        with torch.no_grad():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        text = self.processor.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)[0]
        return " ".join(text.split())


def build_tiny_vlm(folder: str | os.PathLike, seed: int = 0) -> str:
    """Write a tiny randomly initialised LLaVA (CLIP vision + Llama text, word-level tokenizer) to ``folder``.

    It runs the real captioning code path on CPU in a second; its captions are random words.
    """
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor, PreTrainedTokenizerFast)

    special = ["<unk>", "<pad>", "<s>", "</s>", "<image>"]
    words = special + ("a hand hands grasps holds lifts moves the red blue mustard bottle can box mug bowl "
                       "on table and it next to near".split())
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", pad_token="<pad>",
                                   bos_token="<s>", eos_token="</s>")
    fast.add_special_tokens({"additional_special_tokens": ["<image>"]})
    chat = ("{% for m in messages %}{% for c in m['content'] %}{% if c['type'] == 'image' %}<image> "
            "{% else %}{{ c['text'] }} {% endif %}{% endfor %}{% endfor %}")
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=fast, patch_size=8, vision_feature_select_strategy="default", image_token="<image>",
        num_additional_image_tokens=1, chat_template=chat)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                       image_size=32, patch_size=8, projection_dim=16),
        text_config=LlamaConfig(vocab_size=len(words), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                                pad_token_id=1, bos_token_id=2, eos_token_id=3),
        image_token_index=words.index("<image>"), vision_feature_layer=-1)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.suppress_tokens = list(range(len(special)))  # random weights: keep to real words
    folder = os.fspath(folder)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    umask_permissions(folder)
    return folder


# ------------------------------------------------------------------------------------------------ command
def caption_dataset(root: str | os.PathLike, captioner: VLMCaptioner | None = None, num_frames: int = 1,
                    overwrite: bool = False) -> dict:
    """Caption every clip listed in the dataset's filelists, then rewrite the index.

    ``captioner=None`` writes template captions from ``descriptions.json``. A clip already captioned by the
    same source is skipped unless ``overwrite``; an empty VLM answer keeps the template caption.
    Returns the summary (also written to ``<root>/caption_summary.json``).
    """
    root = os.fspath(root)
    index = read_index(root)
    clips = list(dict.fromkeys(c for split_clips in index.values() for c in split_clips))
    source = captioner.source if captioner is not None else TEMPLATE_SOURCE
    summary, start = Summary(), time.perf_counter()
    for clip in tqdm(clips, desc="captions", unit="clip", dynamic_ncols=True):
        clip_dir = os.path.join(root, clip)
        try:
            desc = read_descriptions(clip_dir)
            if not desc:
                raise DataError(os.path.join(clip_dir, "descriptions.json"), "missing (reconvert this clip)")
            if desc.get("caption_source") == source and not overwrite:
                summary.add(ClipResult(clip, "skipped"))
                continue
            prompt, used = caption_from_descriptions(desc), TEMPLATE_SOURCE
            if captioner is not None:
                video = read_video(os.path.join(clip_dir, "video.mp4"))
                answer = captioner.caption(video[resample_indices(len(video), num_frames)])
                if answer:
                    prompt, used = answer, source
                else:
                    logger.warning("%s: the VLM returned an empty caption; keeping the template caption", clip)
            write_json(os.path.join(clip_dir, "descriptions.json"), {**desc, "prompt": prompt, "caption_source": used})
            summary.add(ClipResult(clip, "converted"))
        except Exception as exc:  # one clip's failure is reported, the rest go on
            summary.add(ClipResult(clip, "failed", str(exc) if isinstance(exc, DataError) else f"{type(exc).__name__}: {exc}"))
    # the index only lists clips whose descriptions are valid; failed ones are dropped from it
    write_index(root, {split: [c for c in split_clips if c not in summary.failed] for split, split_clips in index.items()})
    summary.seconds = time.perf_counter() - start
    summary.log("captions")
    result = summary.to_dict()
    write_json(os.path.join(root, "caption_summary.json"), result)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data_tools.datasets.captions",
        description="Caption the clips of a converted dataset (VLM from a local folder, or offline templates) and "
                    "rewrite its prompt filelists and prompts.jsonl.")
    parser.add_argument("--root", required=True, help="converted dataset root (holds filelists/ and clip folders)")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--model", help="local folder of an image-text-to-text model (e.g. llava-v1.6-mistral-7b-hf)")
    mode.add_argument("--template", action="store_true", help="offline template captions from object names and actions")
    mode.add_argument("--tiny-model", metavar="DIR",
                      help="build a tiny random LLaVA in DIR and caption with it (CPU smoke test of the VLM path)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available)")
    parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    parser.add_argument("--question", default=DEFAULT_QUESTION, help="instruction given to the VLM")
    parser.add_argument("--max-new-tokens", type=int, default=120)
    parser.add_argument("--frames", type=positive_int, default=1, help="frames shown to the VLM per clip (uniform; 1 = first)")
    parser.add_argument("--overwrite", action="store_true", help="recaption clips already captioned by this source")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)

    if args.tiny_model:
        args.model, args.dtype = build_tiny_vlm(args.tiny_model), "float32"
    captioner = VLMCaptioner(args.model, args.device, args.dtype, args.question, args.max_new_tokens) if args.model else None
    caption_dataset(args.root, captioner, args.frames, args.overwrite)
    return 0

if __name__ == "__main__":
    from data_tools.io.cli import run_cli

    raise SystemExit(run_cli(main))
