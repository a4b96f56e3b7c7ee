"""Segmentors trained from image-text pairs, and their test-time merger."""

from .rotation_tta import RotationSegTTAModel
from .text_supervised_segmentor import TextSupervisedSegmentor

__all__ = ['RotationSegTTAModel', 'TextSupervisedSegmentor']
