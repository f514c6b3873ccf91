"""Latent store and prepare: layout, round trip against a direct VAE encoding, resume, shards and merge."""
import json
import os

import pytest
import torch

from data_tools.errors import DataError
from data_tools.runtime.latent_store import (LatentDataset, LatentStoreWriter, find_shards, merge_stores, read_index,
                                     sample_key, shard_root)
from data_tools.runtime.sharding import shard_indices
from motion_gen.config import load_motion_config
from motion_gen.prepare import main as prepare_main
from motion_gen.prepare import prepare
from motion_gen.tiny_data import synthetic_dataset

TINY = "configs/motion/tiny.yaml"


def test_store_writer_resume_torn_index_and_merge(tmp_path):
    a = LatentStoreWriter(tmp_path / "a", {"x": 1})
    a.write("k1", {"t": torch.arange(4.0)}, {"name": "s/k1"})
    with open(tmp_path / "a" / "index.jsonl", "a") as f:
        f.write('{"key": "k2", "fi')  # an interrupted append
    assert [r["key"] for r in read_index(tmp_path / "a")] == ["k1"]
    a = LatentStoreWriter(tmp_path / "a", {"x": 1})  # resume: torn line dropped, k1 done
    assert a.done("k1") and not a.done("k2")
    a.write("k2", {"t": torch.ones(2)})
    b = LatentStoreWriter(tmp_path / "b", {"x": 1})
    b.write("k3", {"t": torch.zeros(3)})
    b.write("k1", {"t": torch.full((4,), 9.0)})  # duplicate key: the first store's copy wins
    counts = merge_stores([tmp_path / "a", tmp_path / "b"], tmp_path / "m")
    assert counts == {"added": 3, "skipped": 1, "total": 3}
    ds = LatentDataset(tmp_path / "m")
    items = {ds[i]["key"]: ds[i]["t"] for i in range(len(ds))}
    assert torch.equal(items["k1"], torch.arange(4.0)) and torch.equal(items["k3"], torch.zeros(3))
    assert merge_stores([tmp_path / "a", tmp_path / "b"], tmp_path / "m")["added"] == 0  # resumable
    with pytest.raises(DataError, match="different settings"):
        LatentStoreWriter(tmp_path / "a", {"x": 2})
    LatentStoreWriter(tmp_path / "c", {"x": 3})
    with pytest.raises(DataError, match="cannot merge"):
        merge_stores([tmp_path / "a", tmp_path / "c"], tmp_path / "m2")
    assert sample_key("20200709-subject-01/20200709_141754/836212060125/") == \
        "20200709-subject-01__20200709_141754__836212060125"
    assert shard_indices(5, 1, 2) == [1, 3] and shard_root("r", 0, 1) == "r"


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    return synthetic_dataset(tmp_path_factory.mktemp("hoi") / "ds", num_clips=2)


def test_prepare_layout_matches_direct_encoding_and_resumes(dataset_root, tmp_path):
    from data_tools.maps.bundle import to_model_range
    from data_tools.datasets.hoi_dataset import HOISplit
    from motion_gen.components import load_vae

    cfg = load_motion_config(TINY, [f"data.root={dataset_root}", f"data.latents={tmp_path / 'lat'}",
                                    "data.image_noise=false"])
    assert prepare(cfg) == {"written": 2, "skipped": 0, "root": str(tmp_path / "lat")}
    ds = LatentDataset(tmp_path / "lat")
    assert ds.meta["condition_names"] == ["hand_keypoints", "depth", "seg_mask"] and len(ds) == 2
    item = ds[0]
    assert item["key"] == "synthetic__clip_000"
    assert item["video"].shape == (8, 3, 4, 6)  # mean + logvar of 4 latent channels, 3 latent frames
    assert item["first_frame"].shape == item["cond_first/depth"].shape == (8, 1, 4, 6)
    assert item["prompt_embeds"].shape == (16, 32)
    clip = HOISplit(dataset_root, "train", cfg.model.condition_names, num_frames=9, size=(32, 48))[0]
    vae = load_vae(cfg.model)
    with torch.no_grad():
        direct = vae.encode(to_model_range(clip.conditions["depth"])[None].permute(0, 2, 1, 3, 4)).latent_dist.parameters
        first = vae.encode(to_model_range(clip.video[:1])[None].permute(0, 2, 1, 3, 4)).latent_dist.parameters
    torch.testing.assert_close(item["cond/depth"], direct[0])
    torch.testing.assert_close(item["first_frame"], first[0])  # no image noise requested
    # resume: finished samples are skipped, a removed index line is recomputed
    lines = open(tmp_path / "lat" / "index.jsonl").read().splitlines()
    open(tmp_path / "lat" / "index.jsonl", "w").write(lines[0] + "\n")
    assert prepare(cfg)["written"] == 1 and prepare(cfg)["skipped"] == 2
    # changed settings into the same store are refused
    with pytest.raises(DataError, match="different settings"):
        prepare(load_motion_config(TINY, [f"data.root={dataset_root}", f"data.latents={tmp_path / 'lat'}"]))


def test_sharded_prepare_then_merge_cli(dataset_root, tmp_path):
    out = tmp_path / "lat"
    cfg = load_motion_config(TINY, [f"data.root={dataset_root}", f"data.latents={out}"])
    assert prepare(cfg, rank=0, world=2)["written"] == 1
    assert prepare(cfg, rank=1, world=2)["written"] == 1
    assert [os.path.basename(s) for s in find_shards(out)] == ["shard-00000-of-00002", "shard-00001-of-00002"]
    prepare_main(["merge", str(out)])
    keys = sorted(r["key"] for r in read_index(out))
    assert keys == ["synthetic__clip_000", "synthetic__clip_001"]
    assert json.load(open(out / "store.json"))["meta"]["image_noise"] is True
    # noised first frames differ from the clean encoding but are reproducible per sample
    again = prepare(load_motion_config(TINY, [f"data.root={dataset_root}", f"data.latents={tmp_path / 'again'}"]))
    assert again["written"] == 2
    a, b = LatentDataset(out), LatentDataset(tmp_path / "again")
    ka = {a[i]["key"]: a[i] for i in range(2)}
    for i in range(2):
        torch.testing.assert_close(ka[b[i]["key"]]["first_frame"], b[i]["first_frame"])
