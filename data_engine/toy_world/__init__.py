"""The procedural toy motion world: a text-motion dataset generated on the real HumanML3D / KIT-ML
skeletons and written in their exact folder layout, so the whole pipeline runs without downloads.

``build_toy_world(out, ToyWorldSettings(...))`` writes a dataset; ``toy_world.json`` in it records every
motion's structured attributes (family, direction, speed, side, count, composition parts).
"""

from data_engine.toy_world.actions import FAMILIES, ActionSpec, Family
from data_engine.toy_world.build import (
    MANIFEST_FILE,
    BuildSummary,
    ToyWorldSettings,
    build_toy_world,
    read_manifest,
    read_motion_specs,
)
from data_engine.toy_world.captions import CaptionWriter, mirror_annotation
from data_engine.toy_world.synthesis import MotionSpec, sample_motion_spec, synthesize_motion

__all__ = [
    "FAMILIES", "ActionSpec", "Family", "MANIFEST_FILE", "BuildSummary", "ToyWorldSettings",
    "build_toy_world", "read_manifest", "read_motion_specs", "CaptionWriter", "mirror_annotation",
    "MotionSpec", "sample_motion_spec", "synthesize_motion",
]
