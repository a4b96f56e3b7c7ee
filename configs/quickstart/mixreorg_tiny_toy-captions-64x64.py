# A tiny MixReorg trained from the toy shapes' captions on CPU in seconds:
# the same model code as configs/mixreorg_vit-s_cc12m.py, scaled down
# (patch 8 at 64 px, width 64, stages 2/1/1, 8 then 4 group tokens, text
# 2 x 64). Data: tools/misc/make_toy_image_captions.py data/toy_image_captions
_base_ = [
    '../_base_/models/mixreorg_vit-s.py',
    '../_base_/datasets/toy_image_captions.py',
    '../_base_/default_runtime.py',
]
model = dict(
    data_preprocessor=dict(size=(64, 64)),
    backbone=dict(
        img_size=64,
        patch_size=8,
        embed_dims=64,
        depths=(2, 1, 1),
        num_heads=(2, 2, 2),
        num_group_tokens=(8, 4, 0),
        num_output_groups=(8, 4),
        drop_path_rate=0.0,
    ),
    text_encoder=dict(context_length=24, width=64, layers=2, heads=2),
    image_projector=dict(out_channels=64, hidden_channels=256),
    text_projector=dict(out_channels=64, hidden_channels=256),
    # tokens mixed at the end of stage 1, as the full-size config
    mixer=dict(mix_layer=2),
    # the toy vocabulary names every object, so nouns are found exactly
    noun_prompts=dict(
        max_nouns=3,
        templates='simple',
        vocabulary=['disc', 'square', 'triangle'],
    ),
)
sync_bn = None
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
default_hooks = dict(checkpoint=dict(interval=100))
