"""HumanML3D / KIT-ML motion representation: skeletons, features, recovery, mirroring, stats, rendering."""

from models.motion.layout import FeatureLayout, check_features, feature_layout
from models.motion.mirror import mirror_caption, mirror_features, mirror_joints
from models.motion.representation import (
    ProcessedMotion,
    joints_to_features,
    process_motion,
    recover_from_ric,
    recover_from_rot,
    recover_root_rot_pos,
)
from models.motion.skeleton import HUMANML3D_SKELETON, KIT_SKELETON, SkeletonSpec, get_skeleton
from models.motion.stats import feature_mean_std

__all__ = [
    "FeatureLayout", "check_features", "feature_layout", "mirror_caption", "mirror_features", "mirror_joints",
    "ProcessedMotion", "joints_to_features", "process_motion", "recover_from_ric", "recover_from_rot",
    "recover_root_rot_pos", "HUMANML3D_SKELETON", "KIT_SKELETON", "SkeletonSpec", "get_skeleton",
    "feature_mean_std",
]
