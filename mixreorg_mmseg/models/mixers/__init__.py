"""MixReorg's mixing: plans, the patch mixer, progressive mixing and the
three-branch encoder (registered in ``mmseg.registry.MODELS``)."""

from .mixing_plan import MixingPlan
from .mixreorg_mixer import MixReorgMixer, MixReorgOutput
from .patch_mixer import PatchMixer
from .progressive_mixing_block import ProgressiveMixingBlock

__all__ = [
    'MixingPlan',
    'MixReorgMixer',
    'MixReorgOutput',
    'PatchMixer',
    'ProgressiveMixingBlock',
]
