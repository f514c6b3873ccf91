"""Condition maps: hand-keypoint drawing, segmentation colours, depth/normal colouring and the ``ConditionBundle``.

Imports ``data_tools.io`` only; the pose stage, datasets, metrics and stages draw and read maps through it.
"""
