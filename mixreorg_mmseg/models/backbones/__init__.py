"""Image encoders (registered in ``mmseg.registry.MODELS``)."""

from .grouping_block import GroupAssignment, GroupingBlock
from .groupvit import GroupViT, GroupViTOutput, chain_assignments

__all__ = [
    'GroupAssignment',
    'GroupingBlock',
    'GroupViT',
    'GroupViTOutput',
    'chain_assignments',
]
