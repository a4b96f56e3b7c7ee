# The zero-shot test protocol of GroupViT (NVlabs/GroupViT segmentation
# configs, img_scale=(2048, 448)): resize keeping the aspect ratio to short
# side 448 (long side at most 2048). Label maps are loaded after the resize,
# at their original size: predictions are resized back before IoUMetric.
protocol_scale = (2048, 448)
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=protocol_scale, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
# tools/test.py --tta: MMSeg's multi-scale and flip test (its ratios, 0.5x
# to 1.75x, each view also flipped; SegTTAModel of default_runtime.py
# averages the 12 views' class maps), the ratios taken of the protocol's
# scale above rather than of the image, so 1.0 is the single-view test.
# Not part of GroupViT's protocol, and not measured on these benchmarks:
# docs/benchmarks.md lists it under what remains to be measured.
tta_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='TestTimeAug',
        transforms=[
            [
                dict(
                    type='Resize',
                    scale=tuple(int(side * ratio) for side in protocol_scale),
                    keep_ratio=True,
                )
                for ratio in tta_ratios
            ],
            [
                dict(type='RandomFlip', prob=0.0, direction='horizontal'),
                dict(type='RandomFlip', prob=1.0, direction='horizontal'),
            ],
            [dict(type='LoadAnnotations')],
            [dict(type='PackSegInputs')],
        ],
    ),
]
# each benchmark's file names its dataset (type, root, layout)
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(pipeline=test_pipeline),
)
test_cfg = dict(type='TestLoop')
test_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
