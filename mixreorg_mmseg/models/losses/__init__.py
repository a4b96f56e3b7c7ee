"""Losses, one per module (registered in ``mmseg.registry.MODELS``);
``named_loss`` holds what they share."""

from .group_usage_loss import GroupUsageLoss
from .image_text_contrastive_loss import ImageTextContrastiveLoss
from .mixed_segmentation_loss import MixedSegmentationLoss
from .multi_label_contrastive_loss import MultiLabelContrastiveLoss
from .named_loss import NamedLoss

__all__ = [
    'GroupUsageLoss',
    'ImageTextContrastiveLoss',
    'MixedSegmentationLoss',
    'MultiLabelContrastiveLoss',
    'NamedLoss',
]
