# The toy shapes image-caption set written by
# tools/misc/make_toy_image_captions.py (mixreorg_mmseg.datasets.
# toy_image_captions), read by ImageCaptionDataset. Training data only: the
# zero-shot evaluation runs on a segmentation folder (toy_segmentation.py).
dataset_type = 'ImageCaptionDataset'
data_root = 'data/toy_image_captions'
crop_size = (64, 64)

train_pipeline = [
    # skips (and logs) images that cannot be decoded
    dict(type='LoadImageOrSkip'),
    dict(
        type='mmpretrain.RandomResizedCrop',
        scale=64,
        crop_ratio_range=(0.5, 1.0),
    ),
    dict(type='RandomFlip', prob=0.5),
    # MMSeg's packer: the caption rides in SegDataSample.metainfo
    dict(
        type='PackSegInputs',
        meta_keys=(
            'img_path',
            'ori_shape',
            'img_shape',
            'flip',
            'flip_direction',
            'caption',
            'sample_idx',
        ),
    ),
]
train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='train_captions.tsv',
        data_prefix=dict(img_path='images/train'),
        pipeline=train_pipeline,
    ),
)
