"""Captions: template captions, and the VLM path with a tiny random LLaVA, both rewriting the dataset index."""
from __future__ import annotations

import json
import os

import pytest
import torch

from data_tools.datasets import captions, dexycb, synthetic
from data_tools.io.filelists import read_filelist, read_prompts_jsonl
from data_tools.io.video_io import read_video

SUBJECTS, SERIAL = synthetic.DEXYCB_SUBJECTS, synthetic.DEXYCB_SERIAL


def test_template_caption():
    assert captions.object_display_name("006_mustard_bottle") == "mustard bottle"
    assert captions.object_display_name("O02@0039@00002") == "O02@0039@00002"
    assert captions.template_caption(["006_mustard_bottle", "025_mug", "011_banana"], "025_mug", "left") == (
        "A left hand grasps the mug and lifts it on a tabletop, next to a mustard bottle and a banana. "
        "A realistic video of a hand-object interaction.")
    assert captions.template_caption(["cup", "teapot"], hand_side="both", action="Pour tea from the teapot.") == (
        "Two hands pour tea from the teapot on a tabletop, next to a teapot. "
        "A realistic video of a hand-object interaction.")
    assert captions.template_caption().startswith("A hand moves on a tabletop.")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = synthetic.write_dexycb(str(tmp_path_factory.mktemp("cap_raw")))
    out = str(tmp_path_factory.mktemp("cap_out"))
    dexycb.convert_dexycb(root, out, subjects=[SUBJECTS[0]])
    return out


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory):
    return captions.build_tiny_vlm(str(tmp_path_factory.mktemp("tiny_vlm")))


def test_vlm_captions_rewrite_index(dataset, tiny_vlm):
    torch.manual_seed(0)
    captioner = captions.VLMCaptioner(tiny_vlm, device="cpu", dtype="float32", max_new_tokens=6)
    clip = f"{SUBJECTS[0]}/20200709_141104/{SERIAL}"
    first = read_video(os.path.join(dataset, clip, "video.mp4"))[:1]
    expected = captioner.caption(first)
    assert len(expected.split()) == 6  # the tiny model's special tokens are suppressed: six real words
    summary = captions.caption_dataset(dataset, captioner)
    assert summary["num_converted"] == 5 and summary["num_failed"] == 0
    desc = json.load(open(os.path.join(dataset, clip, "descriptions.json")))
    assert desc["prompt"] == expected and desc["caption_source"] == captioner.source
    assert desc["objects"] == ["006_mustard_bottle", "025_mug"]  # other fields kept
    assert read_filelist(os.path.join(dataset, "filelists", "val", "prompt.txt")) == [expected]
    records = {r["video"]: r["prompt"] for r in read_prompts_jsonl(os.path.join(dataset, "prompts.jsonl"))}
    assert records[f"{clip}/video.mp4"] == expected and len(records) == 5
    # second pass: already captioned by this model -> skipped; the template pass replaces them again
    assert captions.caption_dataset(dataset, captioner)["num_skipped"] == 5
    assert captions.main(["--root", dataset, "--template"]) == 0
    assert read_filelist(os.path.join(dataset, "filelists", "val", "prompt.txt"))[0].startswith(
        "A right hand grasps the mustard bottle")


def test_caption_cli_with_tiny_model(dataset, tmp_path):
    assert captions.main(["--root", dataset, "--tiny-model", str(tmp_path / "vlm"), "--device", "cpu",
                          "--max-new-tokens", "3"]) == 0
    prompts = read_filelist(os.path.join(dataset, "filelists", "train", "prompt.txt"))
    assert len(prompts) == 4 and all(len(p.split()) == 3 for p in prompts)
    summary = json.load(open(os.path.join(dataset, "caption_summary.json")))
    assert summary["num_converted"] == 5 and summary["num_failed"] == 0


def test_caption_cli_help(capsys):
    with pytest.raises(SystemExit) as exc:
        captions.main(["--help"])
    assert exc.value.code == 0 and "--model" in capsys.readouterr().out


def test_missing_model_folder_is_a_data_error(tmp_path):
    with pytest.raises(Exception, match="VLM model folder does not exist"):
        captions.VLMCaptioner(str(tmp_path / "nope"))
