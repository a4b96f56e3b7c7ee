"""Segmentors trained from image-text pairs."""

from .text_supervised_segmentor import TextSupervisedSegmentor

__all__ = ['TextSupervisedSegmentor']
