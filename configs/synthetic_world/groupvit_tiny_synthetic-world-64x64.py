# README's main job: a tiny MixReorg trained on the synthetic image-caption
# world (webdataset shards), validated and tested zero-shot on the world's
# held-out shape pairs (the "unseen" split: object combinations no training
# caption names together), through tools/test.py and IoUMetric.
#   python tools/misc/make_synthetic_world.py data/synthetic_world
#   python tools/train.py configs/synthetic_world/mixreorg_tiny_synthetic-world-64x64.py
#   python tools/test.py configs/synthetic_world/mixreorg_tiny_synthetic-world-64x64.py CKPT
# The model is the tiny MixReorg of configs/quickstart (patch 8 at 64 px,
# width 64, stages 2/1/1, 8 then 4 groups, text 2 x 64). The recipe that
# makes it learn well in minutes is issue 8's work; this is the pipeline.
_base_ = ['../quickstart/mixreorg_tiny_toy-captions-64x64.py']

world_root = 'data/synthetic_world'
num_train = 10000  # tools/misc/make_synthetic_world.py's default
shapes = [
    'disc',
    'square',
    'triangle',
    'star',
    'cross',
    'ring',
    'diamond',
    'crescent',
]
model = dict(
    noun_prompts=dict(max_nouns=3, templates='simple', vocabulary=shapes),
    decode_head=dict(
        type='ZeroShotGroupHead',
        templates='simple',
        topk_classes=None,
        # the backgrounds are plain grey tones: not tuned yet
        bg_thresh=0.5,
    ),
    test_cfg=dict(mode='whole'),
)

train_pipeline = [
    dict(
        type='mmpretrain.RandomResizedCrop',
        scale=64,
        crop_ratio_range=(0.6, 1.0),
    ),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='PackSegInputs',
        meta_keys=('img_path', 'ori_shape', 'img_shape', 'caption'),
    ),
]
train_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    sampler=None,
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        _delete_=True,
        type='WebDatasetImageText',
        data_root=world_root,
        shards='shards/{00000..00009}.tar',
        epoch_size=num_train,
        shuffle_buffer=500,
        pipeline=train_pipeline,
    ),
)
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
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
            img_path='images/unseen', seg_map_path='annotations/unseen'
        ),
        pipeline=test_pipeline,
        test_mode=True,
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-5,
        by_epoch=True,
        begin=0,
        end=4,
        convert_to_iter_based=True,
    ),
]
train_cfg = dict(
    _delete_=True, type='EpochBasedTrainLoop', max_epochs=4, val_interval=1
)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
log_processor = dict(by_epoch=True)
default_hooks = dict(
    logger=dict(interval=25),
    checkpoint=dict(
        by_epoch=True, interval=1, max_keep_ckpts=1, save_best='mIoU'
    ),
)
custom_hooks = [
    dict(type='ShardedDataHook', interval=50),
    dict(type='ZeroShotClassesHook'),
]
