# CC12M image-caption pairs for pre-training, with GroupViT's DeiT-style
# augmentation (NVlabs/GroupViT configs/default.yml): random resized crop to
# 224 (scale 0.08-1, bilinear), flip, colour jitter 0.4, RandAugment
# rand-m9-mstd0.5-inc1, random erasing 0.25, all from mmpretrain.
#
# Layout read here: a TSV with an `image` and a `caption` column, image
# paths relative to data/cc12m/images (ImageCaptionDataset). Corrupt
# images and empty captions are skipped and counted.
dataset_type = 'ImageCaptionDataset'
data_root = 'data/cc12m'
crop_size = (224, 224)
# BGR means/stds of the data preprocessor, for the erased areas' fill
bgr_mean = [103.53, 116.28, 123.675]
bgr_std = [57.375, 57.12, 58.395]

# mmpretrain's 'timm_increasing' RandAugment policies, spelled out with the
# scope prefix: under MMSeg's default scope the bare names are not found.
_randaug_policies = [
    dict(type='mmpretrain.AutoContrast'),
    dict(type='mmpretrain.Equalize'),
    dict(type='mmpretrain.Invert'),
    dict(type='mmpretrain.Rotate', magnitude_range=(0, 30)),
    dict(type='mmpretrain.Posterize', magnitude_range=(4, 0)),
    dict(type='mmpretrain.Solarize', magnitude_range=(256, 0)),
    dict(type='mmpretrain.SolarizeAdd', magnitude_range=(0, 110)),
    dict(type='mmpretrain.ColorTransform', magnitude_range=(0, 0.9)),
    dict(type='mmpretrain.Contrast', magnitude_range=(0, 0.9)),
    dict(type='mmpretrain.Brightness', magnitude_range=(0, 0.9)),
    dict(type='mmpretrain.Sharpness', magnitude_range=(0, 0.9)),
    dict(
        type='mmpretrain.Shear',
        magnitude_range=(0, 0.3),
        direction='horizontal',
    ),
    dict(
        type='mmpretrain.Shear', magnitude_range=(0, 0.3), direction='vertical'
    ),
    dict(
        type='mmpretrain.Translate',
        magnitude_range=(0, 0.45),
        direction='horizontal',
    ),
    dict(
        type='mmpretrain.Translate',
        magnitude_range=(0, 0.45),
        direction='vertical',
    ),
]
# the caption and its noun prompts as CLIP tokens, made in the dataloader
# workers with the ViT-S model's settings (context 77, 3 nouns, CLIP's 80
# ImageNet templates, one drawn per noun from the worker's seeded
# generator); the segmentor checks the first batch
tokenize_caption = dict(
    type='TokenizeCaption',
    context_length=77,
    max_nouns=3,
    templates='imagenet',
)
# what a training sample carries besides the image: the caption and its
# tokens ride in SegDataSample.metainfo
train_meta_keys = (
    'img_path',
    'ori_shape',
    'img_shape',
    'caption',
    'caption_tokens',
    'prompt_tokens',
    'prompt_valid',
)
train_pipeline = [
    dict(type='LoadImageOrSkip'),
    dict(
        type='mmpretrain.RandomResizedCrop',
        scale=224,
        crop_ratio_range=(0.08, 1.0),
        interpolation='bilinear',
        backend='pillow',
    ),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='mmpretrain.ColorJitter',
        brightness=0.4,
        contrast=0.4,
        saturation=0.4,
    ),
    dict(
        type='mmpretrain.RandAugment',
        policies=_randaug_policies,
        num_policies=2,
        total_level=10,
        magnitude_level=9,
        magnitude_std=0.5,
        # the image is BGR here: padding with the mean colour in its order
        hparams=dict(pad_val=[round(x) for x in bgr_mean]),
    ),
    dict(
        type='mmpretrain.RandomErasing',
        erase_prob=0.25,
        mode='rand',
        min_area_ratio=0.02,
        max_area_ratio=1 / 3,
        fill_color=bgr_mean,
        fill_std=bgr_std,
    ),
    tokenize_caption,
    dict(type='PackSegInputs', meta_keys=train_meta_keys),
]
train_dataloader = dict(
    # per GPU; the reference trains 256 x 16 GPUs
    batch_size=256,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='cc12m.tsv',
        data_prefix=dict(img_path='images'),
        pipeline=train_pipeline,
    ),
)
