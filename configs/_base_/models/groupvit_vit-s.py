# GroupViT ViT-S, the reference setting of GroupViT (Xu et al., CVPR 2022,
# arXiv 2202.11094, Sec. 4.1; NVlabs/GroupViT configs/default.yml): patch 16
# at 224, width 384, 6 heads, stages of 6 / 3 / 3 layers with 64 then 8
# group tokens, drop-path 0.1; text transformer 256 wide, 12 layers, context
# 77 on CLIP's BPE vocabulary; 2-layer projection MLPs (hidden 4096) to a
# 256-d joint space; learnable temperature starting at 0.07, exp clamped at
# 100; multi-label contrastive loss on up to 3 nouns a caption. Parameters:
# image 28.84M, text 22.15M, total 55.73M (as the official model).
data_preprocessor = dict(
    type='SegDataPreProcessor',
    # ImageNet statistics, as GroupViT normalises
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    # training crops are all this size (stacked without padding)
    size=(224, 224),
    pad_val=0,
    seg_pad_val=255,
)
model = dict(
    type='TextSupervisedSegmentor',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='GroupViT',
        img_size=224,
        patch_size=16,
        embed_dims=384,
        depths=(6, 3, 3),
        num_heads=(6, 6, 6),
        num_group_tokens=(64, 8, 0),
        num_output_groups=(64, 8),
        drop_path_rate=0.1,
        hard_assignment=True,
    ),
    text_encoder=dict(
        type='OpenCLIPTextEncoder',
        context_length=77,
        vocab_size=49408,
        width=256,
        layers=12,
        heads=4,
    ),
    image_projector=dict(
        type='ProjectionMLP', out_channels=256, hidden_channels=4096
    ),
    text_projector=dict(
        type='ProjectionMLP', out_channels=256, hidden_channels=4096
    ),
    contrastive_loss=dict(type='ImageTextContrastiveLoss'),
    multi_label_loss=dict(type='MultiLabelContrastiveLoss'),
    noun_prompts=dict(max_nouns=3, templates='imagenet'),
    contrast_temperature=0.07,
    logit_scale_max=100.0,
    share_logit_scale=False,
)
# BatchNorm of the projection MLPs becomes SyncBatchNorm under DDP
sync_bn = 'torch'
