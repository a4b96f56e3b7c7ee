# The toy shapes image-caption set written by
# tools/misc/make_toy_image_captions.py (mixreorg_mmseg.datasets.
# toy_image_captions), read by ImageCaptionDataset. Training data only: the
# zero-shot evaluation runs on a segmentation folder (toy_segmentation.py).
dataset_type = 'ImageCaptionDataset'
data_root = 'data/toy_image_captions'
crop_size = (64, 64)
# the toy captions' nouns, every object's name: the leaf configs give them
# to the model's noun_prompts too
caption_vocabulary = ['disc', 'square', 'triangle']

train_pipeline = [
    # skips (and logs) images that cannot be decoded
    dict(type='LoadImageOrSkip'),
    dict(
        type='mmpretrain.RandomResizedCrop',
        scale=64,
        crop_ratio_range=(0.5, 1.0),
    ),
    dict(type='RandomFlip', prob=0.5),
    # the caption and its noun prompts as CLIP tokens (the tiny model's
    # context 24, 3 nouns, one template), made in the dataloader workers
    dict(
        type='TokenizeCaption',
        context_length=24,
        max_nouns=3,
        templates='simple',
        vocabulary=caption_vocabulary,
    ),
    # MMSeg's packer: the caption and its tokens ride in
    # SegDataSample.metainfo
    dict(
        type='PackSegInputs',
        meta_keys=(
            'img_path',
            'ori_shape',
            'img_shape',
            'flip',
            'flip_direction',
            'caption',
            'caption_tokens',
            'prompt_tokens',
            'prompt_valid',
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
