# The tiny models' schedule on the synthetic world: 6 epochs (60,000
# samples, README's main job in about 15 minutes on 2 CPU cores), zero-shot
# validation after each. AdamW at lr 2e-3 with weight decay 0.05, 300
# warm-up iterations from a tenth of it, then cosine per iteration down to
# 1e-5 at the end of the last epoch; gradient clipping at 5.0 as GroupViT's
# schedule (schedule_groupvit_30e.py). Why this lr and warm-up:
# docs/benchmarks.md ("Learning on the synthetic world").
max_epochs = 6
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
    clip_grad=dict(max_norm=5.0),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=300),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-5,
        by_epoch=True,
        begin=0,
        end=max_epochs,
        convert_to_iter_based=True,
    ),
]
# MMEngine's epoch loop, resumable in the middle of an epoch (--resume
# from an iteration checkpoint continues with the next batch)
train_cfg = dict(
    type='ResumableEpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1
)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
