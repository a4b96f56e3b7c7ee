"""losses."""

from .image_text_contrastive_loss import ImageTextContrastiveLoss
from .multi_label_contrastive_loss import MultiLabelContrastiveLoss

__all__ = ['ImageTextContrastiveLoss', 'MultiLabelContrastiveLoss']
