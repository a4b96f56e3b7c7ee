# The tiny toy GroupViT (configs/quickstart/groupvit_tiny_toy-captions-
# 64x64.py, trained on the toy shapes' captions) tested zero-shot on the toy
# shapes segmentation folder (background, disc, square, triangle), whole
# images at their 64 x 64 training size. Data:
#   python tools/misc/make_toy_segmentation.py data/toy_segmentation
#   python tools/test.py configs/zero_shot/groupvit_tiny_toy-segmentation-64x64.py CKPT
_base_ = [
    '../quickstart/groupvit_tiny_toy-captions-64x64.py',
    '../_base_/datasets/zero_shot_folder.py',
]
model = dict(
    decode_head=dict(
        type='ZeroShotGroupHead',
        templates='simple',
        topk_classes=5,
        # not tuned: the toy's 3 shapes on a dark background
        bg_thresh=0.5,
    ),
    test_cfg=dict(mode='whole'),
)
custom_hooks = [dict(type='ZeroShotClassesHook')]
test_dataloader = dict(
    num_workers=0,
    dataset=dict(
        data_root='data/toy_segmentation',
        data_prefix=dict(
            img_path='images/val', seg_map_path='annotations/val'
        ),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations'),
            dict(type='PackSegInputs'),
        ],
    ),
)
