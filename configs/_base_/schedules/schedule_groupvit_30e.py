# GroupViT's pre-training schedule (NVlabs/GroupViT configs/default.yml and
# group_vit_gcc_yfcc_30e.yml): 30 epochs, AdamW (0.9, 0.999), weight decay
# 0.05, base lr 1.6e-3 for a global batch of 4096 (256 x 16 GPUs), 2 warm-up
# epochs from 4e-6, cosine down to 4e-5, gradient clipping at 5.0.
# With `--cfg-options auto_scale_lr.enable=True` MMEngine's Runner scales
# the lr linearly when the global batch is not 4096.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW',
        lr=1.6e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.05,
    ),
    # no decay on norms, biases, position embeddings, group tokens and the
    # temperatures, as the reference skips them
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={
            'pos_embed': dict(decay_mult=0.0),
            'positional_embedding': dict(decay_mult=0.0),
            'group_token': dict(decay_mult=0.0),
            'logit_scale': dict(decay_mult=0.0),
        },
    ),
    clip_grad=dict(max_norm=5.0),
)
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=4e-6 / 1.6e-3,
        by_epoch=True,
        begin=0,
        end=2,
        convert_to_iter_based=True,
    ),
    dict(
        type='CosineAnnealingLR',
        eta_min=4e-5,
        by_epoch=True,
        begin=2,
        end=30,
        convert_to_iter_based=True,
    ),
]
# MMEngine's epoch loop, resumable in the middle of an epoch (--resume
# from an iteration checkpoint continues with the next batch)
train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=30)
auto_scale_lr = dict(enable=False, base_batch_size=4096)
