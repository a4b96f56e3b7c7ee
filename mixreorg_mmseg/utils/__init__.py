"""Compatibility and I/O helpers that the rest of the package builds on.

Nothing here may import ``mmseg`` at module level: ``mmcv_lite_compat`` must
run before MMSeg's first import.
"""

from . import (
    caption_nouns,
    clip_tokens,
    groupvit_checkpoint,
    hf_groupvit_checkpoint,
    mmcv_lite_compat,
    mmpretrain_compat,
    noun_prompts,
    parameter_count,
    prompt_templates,
    safe_checkpoint,
    seg_drawing,
)

__all__ = [
    'caption_nouns',
    'clip_tokens',
    'groupvit_checkpoint',
    'hf_groupvit_checkpoint',
    'mmcv_lite_compat',
    'mmpretrain_compat',
    'noun_prompts',
    'parameter_count',
    'prompt_templates',
    'safe_checkpoint',
    'seg_drawing',
]
