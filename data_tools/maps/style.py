"""Named condition styles: how the condition maps are drawn for the models that will read them.

One key (``style:`` in the render, converter and sim2real configs) picks a preset:

- ``engine``: this engine's own look (grey depth, black background around the rendered normals, no tracking map).
- ``pam_release``: the look of the data the PAM authors' released models were trained on, measured on the
  reference's DexYCB sample: depth is the **inferno** colour map over the foreground on black; normals cover the
  whole frame (the reference's DexYCB normals are full-frame estimates, so empty sim pixels get the normal of a
  backdrop facing the camera); the tracking video of 3D points is drawn (the released motion model has a
  tracking stream), and the motion model gets its normal stream as the reference feeds it: an all-zero video in
  model range (mid-grey), see docs/motion.md.
- ``pam_release_oakink2``: as ``pam_release`` but the normal map is a copy of the depth map, as in the
  reference's OakInk2 sample.
"""
from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Mapping

from data_tools.errors import DataError
from data_tools.maps.geometry_maps import DEPTH_COLORMAPS

NORMAL_SOURCES = ("render", "depth")           # the renderer's normals, or a copy of the depth map
NORMAL_BACKGROUNDS = ("black", "facing")       # empty pixels: black, or the normal facing the camera
FIXED_INPUTS = ("grey", "zero_latent")         # motion streams fed without a video (see motion_gen.pipeline)


@dataclasses.dataclass(frozen=True)
class ConditionStyle:
    """How each condition map is drawn, and which motion streams get a fixed input instead of a video."""

    name: str
    depth_colormap: str = "gray"
    normal_source: str = "render"
    normal_background: str = "black"
    tracking: bool = False
    motion_fixed: Mapping[str, str] = dataclasses.field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self):
        if self.depth_colormap not in DEPTH_COLORMAPS:
            raise ValueError(f"style {self.name}: depth_colormap must be one of {DEPTH_COLORMAPS}")
        if self.normal_source not in NORMAL_SOURCES or self.normal_background not in NORMAL_BACKGROUNDS:
            raise ValueError(f"style {self.name}: normal_source in {NORMAL_SOURCES}, normal_background in "
                             f"{NORMAL_BACKGROUNDS}")
        if any(v not in FIXED_INPUTS for v in self.motion_fixed.values()):
            raise ValueError(f"style {self.name}: motion_fixed values must be in {FIXED_INPUTS}")


_RELEASE = dict(depth_colormap="inferno", normal_background="facing", tracking=True,
                motion_fixed=MappingProxyType({"normal": "grey"}))
STYLES = {
    "engine": ConditionStyle("engine"),
    "pam_release": ConditionStyle("pam_release", **_RELEASE),
    "pam_release_oakink2": ConditionStyle("pam_release_oakink2", **{**_RELEASE, "normal_source": "depth"}),
}


def get_style(name: str) -> ConditionStyle:
    """The named style (DataError naming the known ones otherwise)."""
    if name not in STYLES:
        raise DataError(None, f"unknown condition style {name!r}; known styles: {', '.join(STYLES)}")
    return STYLES[name]
