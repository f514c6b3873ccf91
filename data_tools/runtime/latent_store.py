"""Pre-computed per-sample latents on disk: resumable, shardable writing, merging of shards, and a Dataset.

Layout of a store ``<root>/``::

    store.json                      {"format": "pam-latents/1", "meta": {...}}   (what produced it; equal across shards)
    index.jsonl                     one {"key", "file", ...record} per finished sample, appended after its file
    samples/<key>.safetensors       the sample's tensors (names chosen by the producer), record in the metadata
    shards/shard-<r>-of-<n>/        a full store per worker when several processes write (``shard_root``)

A sample counts as done once its index line exists; its file is written atomically before that, so an
interrupted run resumes by skipping indexed keys. ``merge_stores`` joins shard stores (hard links when possible).
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
from typing import Iterable, Mapping

import torch
from torch.utils.data import Dataset

from data_tools.io.atomic import atomic_path, write_json, write_text
from data_tools.errors import DataError

logger = logging.getLogger(__name__)
FORMAT = "pam-latents/1"
STORE_FILE, INDEX_FILE, SAMPLES_DIR = "store.json", "index.jsonl", "samples"


def sample_key(name: str) -> str:
    """A file-safe key for a sample name (``subject/sequence/serial`` -> ``subject__sequence__serial``)."""
    key = re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip("/").replace("/", "__"))
    if not key or key.startswith("."):
        raise DataError(None, f"cannot make a sample key from name {name!r}")
    return key


def shard_root(root: str | os.PathLike, rank: int, world: int) -> str:
    """Where worker ``rank`` of ``world`` writes (``root`` itself for a single worker)."""
    root = os.fspath(root)
    return root if world <= 1 else os.path.join(root, "shards", f"shard-{rank:05d}-of-{world:05d}")


def read_meta(root: str | os.PathLike) -> dict:
    """The ``meta`` dict of a store (DataError when it is not a store)."""
    path = os.path.join(os.fspath(root), STORE_FILE)
    if not os.path.isfile(path):
        raise DataError(os.fspath(root), f"not a latent store ({STORE_FILE} missing)")
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as exc:
            raise DataError(path, f"invalid JSON ({exc.msg})") from None
    if data.get("format") != FORMAT:
        raise DataError(path, f"unknown store format {data.get('format')!r} (expected {FORMAT})")
    return data["meta"]


def read_index(root: str | os.PathLike) -> list[dict]:
    """Records of finished samples in writing order; a torn last line (interrupted append) is ignored."""
    path = os.path.join(os.fspath(root), INDEX_FILE)
    if not os.path.isfile(path):
        return []
    records = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):  # last line without newline: an interrupted write
                logger.warning("%s: ignoring a torn last line", path)
                continue
            raise DataError(path, f"line {number} is not valid JSON") from None
    return records


class LatentStoreWriter:
    """Writes samples into one store; samples already indexed are reported as done (resume)."""

    def __init__(self, root: str | os.PathLike, meta: Mapping):
        self.root = os.fspath(root)
        self.meta = json.loads(json.dumps(dict(meta)))  # plain JSON types, comparable with what is on disk
        os.makedirs(os.path.join(self.root, SAMPLES_DIR), exist_ok=True)
        if os.path.isfile(os.path.join(self.root, STORE_FILE)):
            existing = read_meta(self.root)
            if existing != self.meta:
                changed = sorted(k for k in set(existing) | set(self.meta) if existing.get(k) != self.meta.get(k))
                raise DataError(os.path.join(self.root, STORE_FILE),
                                f"store was written with different settings ({changed}); use a new folder")
        else:
            write_json(os.path.join(self.root, STORE_FILE), {"format": FORMAT, "meta": self.meta})
        records = read_index(self.root)
        self._rewrite_index(records)  # drops a torn last line
        self.done_keys = {r["key"] for r in records}

    def _rewrite_index(self, records: list[dict]) -> None:
        write_text(os.path.join(self.root, INDEX_FILE), "".join(json.dumps(r) + "\n" for r in records))

    def done(self, key: str) -> bool:
        return key in self.done_keys

    def write(self, key: str, tensors: Mapping[str, torch.Tensor], record: Mapping | None = None) -> str:
        """Store ``tensors`` for ``key`` (atomic file, then one index line). Returns the file path."""
        from safetensors.torch import save_file

        record = {"key": key, "file": f"{SAMPLES_DIR}/{key}.safetensors", **dict(record or {})}
        path = os.path.join(self.root, record["file"])
        with atomic_path(path) as tmp:
            save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp,
                      metadata={"record": json.dumps(record)})
        with open(os.path.join(self.root, INDEX_FILE), "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.done_keys.add(key)
        return path


def _link_or_copy(src: str, dst: str) -> None:
    with atomic_path(dst) as tmp:
        os.remove(tmp)
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copy2(src, tmp)


def merge_stores(sources: Iterable[str | os.PathLike], dest: str | os.PathLike) -> dict:
    """Join shard stores into ``dest`` (resumable: keys already in ``dest`` are skipped). Returns counts."""
    sources = [os.fspath(s) for s in sources]
    if not sources:
        raise DataError(os.fspath(dest), "no source stores to merge")
    metas = [read_meta(s) for s in sources]
    for source, meta in zip(sources[1:], metas[1:]):
        if meta != metas[0]:
            raise DataError(source, f"store settings differ from {sources[0]}; cannot merge")
    writer = LatentStoreWriter(dest, metas[0])
    added = skipped = 0
    with open(os.path.join(writer.root, INDEX_FILE), "a", encoding="utf-8") as index:
        for source in sources:
            for record in read_index(source):
                if writer.done(record["key"]):
                    skipped += 1
                    continue
                src = os.path.join(source, record["file"])
                if not os.path.isfile(src):
                    raise DataError(src, "indexed sample file is missing")
                _link_or_copy(src, os.path.join(writer.root, record["file"]))
                index.write(json.dumps(record) + "\n")
                index.flush()
                writer.done_keys.add(record["key"])
                added += 1
    logger.info("merged %d samples into %s (%d already there)", added, writer.root, skipped)
    return {"added": added, "skipped": skipped, "total": len(writer.done_keys)}


def find_shards(root: str | os.PathLike) -> list[str]:
    """Shard stores under ``<root>/shards`` (sorted)."""
    folder = os.path.join(os.fspath(root), "shards")
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, d) for d in os.listdir(folder)
                  if os.path.isfile(os.path.join(folder, d, STORE_FILE)))


class LatentDataset(Dataset):
    """Samples of a store as ``{"key": str, <tensor name>: tensor}`` dicts (optionally only some tensors)."""

    def __init__(self, root: str | os.PathLike, names: Iterable[str] | None = None):
        self.root = os.fspath(root)
        self.meta = read_meta(self.root)
        self.records = read_index(self.root)
        if not self.records:
            raise DataError(os.path.join(self.root, INDEX_FILE), "store has no finished samples")
        self.names = None if names is None else list(names)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        from safetensors import safe_open

        record = self.records[index]
        path = os.path.join(self.root, record["file"])
        if not os.path.isfile(path):
            raise DataError(path, "indexed sample file is missing")
        with safe_open(path, framework="pt") as f:
            names = self.names if self.names is not None else list(f.keys())
            missing = [n for n in names if n not in f.keys()]
            if missing:
                raise DataError(path, f"sample lacks tensors {missing}")
            item = {n: f.get_tensor(n) for n in names}
        item["key"] = record["key"]
        return item
