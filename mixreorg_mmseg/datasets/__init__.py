"""Datasets, data writers and transforms (registered in ``mmseg.registry``'s
``DATASETS`` and ``TRANSFORMS``)."""

from .coco_object import (
    COCO_OBJECT_CLASSES,
    COCOObjectDataset,
    write_coco_object,
)
from .folder_seg_dataset import FolderSegDataset, read_class_names
from .image_caption_dataset import ImageCaptionDataset, clean_caption
from .image_files import (
    BadImageFileError,
    NameBadFilesMixin,
    check_label_map,
    find_bad_file,
    read_image,
)
from .jpeg_batch_collate import jpeg_batch_collate
from .shard_io import (
    ShardReport,
    check_shard,
    encode_jpeg,
    expand_shards,
    write_shards,
)
from .synthetic_world import SyntheticWorld, write_synthetic_world
from .toy_image_captions import (
    generate_toy_image_captions,
    make_toy_caption,
    write_toy_image_captions,
)
from .toy_segmentation import TOY_CLASSES, write_toy_segmentation
from .transforms import (
    TOKEN_KEYS,
    LoadImageOrSkip,
    LoadJpegBytes,
    PackJpegInputs,
    TokenizeCaption,
)
from .webdataset_image_text import ShardDataError, WebDatasetImageText

__all__ = [
    'COCO_OBJECT_CLASSES',
    'COCOObjectDataset',
    'write_coco_object',
    'FolderSegDataset',
    'read_class_names',
    'ImageCaptionDataset',
    'clean_caption',
    'BadImageFileError',
    'NameBadFilesMixin',
    'check_label_map',
    'find_bad_file',
    'read_image',
    'jpeg_batch_collate',
    'SyntheticWorld',
    'write_synthetic_world',
    'LoadImageOrSkip',
    'LoadJpegBytes',
    'PackJpegInputs',
    'TOKEN_KEYS',
    'TokenizeCaption',
    'generate_toy_image_captions',
    'make_toy_caption',
    'write_toy_image_captions',
    'ShardReport',
    'check_shard',
    'encode_jpeg',
    'expand_shards',
    'write_shards',
    'ShardDataError',
    'WebDatasetImageText',
    'TOY_CLASSES',
    'write_toy_segmentation',
]
