"""Dataset converters: official DexYCB / OakInk2 downloads -> the processed-dataset layout.

Every converter writes per-clip folders (``video.mp4``, ``hand_keypoints.mp4``, ``depth.mp4``, ``seg_mask.mp4``,
``descriptions.json``), split filelists and ``prompts.jsonl`` (see ``data_tools.datasets.hoi_dataset``), runs in parallel
over clips through ``data_tools.datasets.runner`` (resumable, atomic, with a summary of what failed and why),
and has a CLI: ``python -m data_tools.datasets.{dexycb,oakink2,captions} --help``.
"""
