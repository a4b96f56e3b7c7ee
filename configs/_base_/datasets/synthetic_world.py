# The synthetic image-caption world written by
#   python tools/misc/make_synthetic_world.py data/synthetic_world
# (mixreorg_mmseg.datasets.synthetic_world). Training streams the caption
# shards (WebDatasetImageText); zero-shot validation runs on the `seen`
# split (shape pairs that training captions name together, for model
# selection) and the test on the held-out `unseen` split (pairs no training
# caption names together), read by FolderSegDataset with the world's
# classes.txt (background, then the shape names).
world_root = 'data/synthetic_world'
# the class names, one a line: FolderSegDataset reads them for the
# zero-shot head, and a model's noun_prompts.vocabulary can point here, so
# a world with other shapes needs only world_root changed
world_classes = world_root + '/classes.txt'
num_train = 10000  # tools/misc/make_synthetic_world.py's default

train_pipeline = [
    # the dataset decodes the images from the tars itself
    dict(
        type='mmpretrain.RandomResizedCrop',
        scale=64,
        crop_ratio_range=(0.6, 1.0),
    ),
    dict(type='RandomFlip', prob=0.5),
    # the captions' colour words go: colour is drawn independently of
    # shape, and with them in the caption the image-text losses match
    # colours where they should learn outlines (docs/benchmarks.md,
    # "colour words")
    dict(type='DropCaptionWords', words='colours'),
    # the caption and its noun prompts as CLIP tokens, made in the
    # dataloader workers; the settings are the tiny model's text encoder
    # (context 24) and noun_prompts (3 nouns, one template, the world's
    # shape names), which the segmentor checks on the first batch
    dict(
        type='TokenizeCaption',
        context_length=24,
        max_nouns=3,
        templates='simple',
        vocabulary=world_classes,
    ),
    # MMSeg's packer: the caption and its tokens ride in
    # SegDataSample.metainfo
    dict(
        type='PackSegInputs',
        meta_keys=(
            'img_path',
            'ori_shape',
            'img_shape',
            'caption',
            'caption_tokens',
            'prompt_tokens',
            'prompt_valid',
        ),
    ),
]
train_dataloader = dict(
    batch_size=64,
    # loaded in the training process: on 2 CPU cores, where this world
    # trains, worker processes take CPU from the step's two threads and the
    # main process spends more receiving a batch's 256 tensors than it
    # takes to make them (0.79-0.85 s an iteration against 0.93-1.03 with
    # 1 or 2 workers, docs/benchmarks.md); on a larger machine set it as
    # usual
    num_workers=0,
    persistent_workers=False,
    # an IterableDataset: no sampler; the dataset splits the shards over
    # ranks and workers, and ShardedDataHook gives it the epoch
    sampler=None,
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='WebDatasetImageText',
        data_root=world_root,
        shards='shards/{00000..00009}.tar',
        epoch_size=num_train,
        shuffle_buffer=500,
        pipeline=train_pipeline,
    ),
)

# zero-shot inference at the training side (64 px), where the stem learned
# the outlines that tell the shapes apart; the zero-shot head's
# pixel-adaptive refinement (configs/synthetic_world) then draws the
# segments' edges at pixel level instead of the 8 px token grid's. On the
# seen pairs (the held-out ones take no part) 1x with refinement beats
# 1.5x and 2x; without it 1.5x was best (docs/benchmarks.md).
test_scale = 64
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(test_scale, test_scale), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
# tools/test.py --tta (README's main job tests this way): every image at
# 0.75x, 1x and 1.25x the training side, upright and turned by 180
# degrees, each also flipped: 12 views, whose class maps the TTA model of
# configs/_base_/default_runtime.py turns back and averages. The training
# crops show objects at up to 1.3x their size, and the world draws every
# shape at a random angle, so each view is one the model could have been
# trained on; the views give each pixel several groupings and namings to
# vote. Chosen on the seen pairs (docs/benchmarks.md, "test-time
# augmentation").
tta_scales = [int(test_scale * ratio) for ratio in (0.75, 1.0, 1.25)]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='TestTimeAug',
        transforms=[
            [
                dict(type='Resize', scale=(side, side), keep_ratio=True)
                for side in tta_scales
            ],
            [dict(type='Rotate90', k=0), dict(type='Rotate90', k=2)],
            [
                dict(type='RandomFlip', prob=0.0, direction='horizontal'),
                dict(type='RandomFlip', prob=1.0, direction='horizontal'),
            ],
            [dict(type='LoadAnnotations')],
            [
                dict(
                    type='PackSegInputs',
                    meta_keys=(
                        'img_path',
                        'seg_map_path',
                        'ori_shape',
                        'img_shape',
                        'pad_shape',
                        'scale_factor',
                        'flip',
                        'flip_direction',
                        'reduce_zero_label',
                        'rot90',
                    ),
                )
            ],
        ],
    ),
]
val_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='FolderSegDataset',
        data_root=world_root,
        data_prefix=dict(
            img_path='images/seen', seg_map_path='annotations/seen'
        ),
        pipeline=test_pipeline,
        test_mode=True,
    ),
)
# the same loader on the held-out pairs
test_dataloader = dict(
    val_dataloader,
    dataset=dict(
        val_dataloader['dataset'],
        data_prefix=dict(
            img_path='images/unseen', seg_map_path='annotations/unseen'
        ),
    ),
)
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

custom_hooks = [
    dict(type='ShardedDataHook', interval=50),
    # the zero-shot head is prompted with the evaluated split's classes
    dict(type='ZeroShotClassesHook'),
]
