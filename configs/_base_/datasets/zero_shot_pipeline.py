# The zero-shot test protocol of GroupViT (NVlabs/GroupViT segmentation
# configs, img_scale=(2048, 448)): resize keeping the aspect ratio to short
# side 448 (long side at most 2048). Label maps are loaded after the resize,
# at their original size: predictions are resized back before IoUMetric.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 448), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
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
