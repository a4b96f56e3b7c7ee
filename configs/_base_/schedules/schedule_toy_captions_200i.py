# The tiny GroupViT's schedule on the toy captions: 200 iterations (seconds
# on CPU), AdamW at lr 1e-3 with weight decay 0.05, 20 warm-up iterations
# from a tenth of it, then cosine down to 1e-5; gradient clipping at 5.0 as
# GroupViT's schedule (schedule_groupvit_30e.py). No validation: the toy
# captions have no label maps (configs/zero_shot tests the checkpoint).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
    clip_grad=dict(max_norm=5.0),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-5,
        by_epoch=False,
        begin=20,
        end=200,
    ),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=200)
