# CC12M shards with the JPEGs decoded and augmented on the GPU: the
# dataloader workers read the shards, check each JPEG's header and tokenize
# the caption; GPUDecodeSegDataPreProcessor decodes the batch with
# torchvision's decode_jpeg on the model's device and applies the CPU
# pipeline's augmentation (cc12m_image_captions.py: the same crop scales,
# flip, colour jitter, RandAugment policies, random erasing; differences:
# docs/benchmarks.md, "GPU"). A model config selects it with
#   model = dict(data_preprocessor=gpu_decode_preprocessor)
# The shards and their settings are image_text_shards.py's, repeated here
# so that a model config stays two _base_ hops from the augmentation.
_base_ = ['./cc12m_image_captions.py']

train_pipeline = [
    dict(type='LoadJpegBytes'),
    {{_base_.tokenize_caption}},
    dict(type='PackJpegInputs', meta_keys={{_base_.train_meta_keys}}),
]
train_dataloader = dict(
    sampler=None,
    # a batch crosses from a worker to the main process as a few tensors
    # (the JPEGs end to end, the stacked tokens), not four per sample
    collate_fn=dict(type='jpeg_batch_collate'),
    dataset=dict(
        _delete_=True,
        type='WebDatasetImageText',
        data_root='data/cc12m',
        shards='{00000..01242}.tar',
        epoch_size=10_000_000,
        shuffle_buffer=1000,
        max_skip_ratio=0.1,
        allow_reread=True,
        # the workers keep the bytes: decoding is the data preprocessor's
        decode_images=False,
        pipeline=train_pipeline,
    ),
)
custom_hooks = [dict(type='ShardedDataHook', interval=50)]
gpu_decode_preprocessor = dict(
    type='GPUDecodeSegDataPreProcessor',
    # RGB, as the decoded JPEGs are; decoded BGR images (validation) are
    # still converted by bgr_to_rgb
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    size=(224, 224),
    pad_val=0,
    seg_pad_val=255,
    crop_scale=(0.08, 1.0),
    crop_ratio=(3 / 4, 4 / 3),
    flip_prob=0.5,
    color_jitter=dict(brightness=0.4, contrast=0.4, saturation=0.4),
    rand_augment=dict(
        policies={{_base_._randaug_policies}},
        num_policies=2,
        magnitude_level=9,
        magnitude_std=0.5,
        total_level=10,
        # the CPU pipeline's padding, the ImageNet mean colour, in the RGB
        # order of the decoded batch
        fill=(124, 116, 104),
    ),
    random_erasing=dict(
        prob=0.25,
        min_area_ratio=0.02,
        max_area_ratio=1 / 3,
        aspect_range=(3 / 10, 10 / 3),
        fill_mean=[123.675, 116.28, 103.53],
        fill_std=[58.395, 57.12, 57.375],
    ),
)
