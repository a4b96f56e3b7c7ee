# A tiny GroupViT that trains on CPU: the model of groupvit_vit-s.py (same
# code, losses and temperature) scaled down to 64 x 64 images: patch 8
# (an 8 x 8 token grid), width 64, 2 heads, stages of 2 / 1 / 1 layers with
# 8 then 4 group tokens, no drop-path; text transformer 2 layers x 64 wide,
# context 24 (short captions); projection MLPs 256 hidden to a 64-d joint
# space. The leaves that train it name their captions' nouns
# (noun_prompts.vocabulary).
data_preprocessor = dict(
    type='SegDataPreProcessor',
    # ImageNet statistics, as GroupViT normalises
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    # training crops are all this size (stacked without padding)
    size=(64, 64),
    pad_val=0,
    seg_pad_val=255,
)
model = dict(
    type='TextSupervisedSegmentor',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='GroupViT',
        img_size=64,
        patch_size=8,
        embed_dims=64,
        depths=(2, 1, 1),
        num_heads=(2, 2, 2),
        num_group_tokens=(8, 4, 0),
        num_output_groups=(8, 4),
        drop_path_rate=0.0,
        hard_assignment=True,
    ),
    text_encoder=dict(
        type='OpenCLIPTextEncoder',
        context_length=24,
        vocab_size=49408,
        width=64,
        layers=2,
        heads=2,
    ),
    image_projector=dict(
        type='ProjectionMLP', out_channels=64, hidden_channels=256
    ),
    text_projector=dict(
        type='ProjectionMLP', out_channels=64, hidden_channels=256
    ),
    contrastive_loss=dict(type='ImageTextContrastiveLoss'),
    multi_label_loss=dict(type='MultiLabelContrastiveLoss'),
    # one template: the prompts of a caption are deterministic
    noun_prompts=dict(max_nouns=3, templates='simple'),
    contrast_temperature=0.07,
    logit_scale_max=100.0,
    share_logit_scale=False,
)
# plain BatchNorm in the projection MLPs: the tiny model trains on one
# process, often on CPU, where SyncBatchNorm has nothing to sync
sync_bn = None
