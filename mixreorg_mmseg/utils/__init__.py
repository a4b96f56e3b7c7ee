"""Compatibility and I/O helpers that the rest of the package builds on.

Nothing here may import ``mmseg`` at module level: ``mmcv_lite_compat`` must
run before MMSeg's first import.
"""

from . import (
    groupvit_checkpoint,
    hf_groupvit_checkpoint,
    mmcv_lite_compat,
    mmpretrain_compat,
    parameter_count,
    safe_checkpoint,
    seg_drawing,
)

__all__ = [
    'groupvit_checkpoint',
    'hf_groupvit_checkpoint',
    'mmcv_lite_compat',
    'mmpretrain_compat',
    'parameter_count',
    'safe_checkpoint',
    'seg_drawing',
]
