"""Datasets and data writers (registered in ``mmseg.registry.DATASETS``)."""

from .folder_seg_dataset import FolderSegDataset, read_class_names
from .toy_segmentation import TOY_CLASSES, write_toy_segmentation

__all__ = [
    'FolderSegDataset',
    'read_class_names',
    'TOY_CLASSES',
    'write_toy_segmentation',
]
