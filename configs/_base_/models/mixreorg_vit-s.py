# MixReorg (Cai et al., ICCV 2023, arXiv 2308.04829) on GroupViT ViT-S: the
# GroupViT model of groupvit_vit-s.py with mixing switched on. The mixer
# (contextual mixing, progressive mixing, mixing restoration; Sec. 3,
# Fig. 2) runs at training time only; the extra losses are the contrastive
# loss of restored features and the segmentation loss of mixed images.
# The choices the paper leaves open and their defaults: docs/method.md.
_base_ = ['./groupvit_vit-s.py']
model = dict(
    mixer=dict(
        type='MixReorgMixer',
        # tokens are mixed after all 6 layers of stage 1, with the most
        # context of their own image (contextual mixing); one progressive
        # block, then the grouping block. Training step vs GroupViT
        # (docs/benchmarks.md): about 1.4x; mix_layer=5 (one more shared
        # layer on the mixed images): about 1.5-1.6x; mix_layer=3: 1.9x.
        mix_layer=6,
        # two images per mixed image, as the paper's Fig. 2; single patches
        group_size=2,
        unit=1,
        progressive=True,
        # the mixer's own losses: restored features against the captions,
        # and the mixed images' tokens classified among their group's
        # captions through the hard grouping assignments
        restored_contrastive_loss=dict(
            type='ImageTextContrastiveLoss',
            loss_weight=1.0,
            loss_name='loss_restored_contrastive',
        ),
        mixed_segmentation_loss=dict(
            type='MixedSegmentationLoss', loss_weight=1.0, candidates='group'
        ),
        seg_assignment='hard',
    ),
)
