"""Training runtime shared by both trainers: the ``Trainer``, launcher, environment check, checkpoints, latents, shards.

Imports ``data_tools.io`` only; ``appearance_gen`` and ``motion_gen`` plug their models and losses into it.
"""
