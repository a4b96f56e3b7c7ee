"""Losses, one per module (registered in ``mmseg.registry.MODELS``)."""

from .image_text_contrastive_loss import ImageTextContrastiveLoss
from .mixed_segmentation_loss import MixedSegmentationLoss
from .multi_label_contrastive_loss import MultiLabelContrastiveLoss

__all__ = [
    'ImageTextContrastiveLoss',
    'MixedSegmentationLoss',
    'MultiLabelContrastiveLoss',
]
