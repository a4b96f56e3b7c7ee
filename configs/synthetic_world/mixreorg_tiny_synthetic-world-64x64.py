# README's main job: the synthetic world's MixReorg (issue 8), which is
# groupvit_tiny_synthetic-world-64x64.py with the mixing switched on:
# groups of 2 images, single patches, the restored-feature contrastive loss
# and the mixed-image segmentation loss at weight 1, as
# configs/_base_/models/mixreorg_vit-s.py switches it on for ViT-S, except
# where the tokens are mixed: here right after the patch embedding (raw
# patches, mix_layer=0), not at the end of stage 1. In this small model,
# tokens mixed after context all carry their own image's identity and the
# grouping learns "which image" (docs/benchmarks.md: the contextual_mixing
# ablation). Nothing else differs: same world, schedule and budget.
#   python tools/misc/make_synthetic_world.py data/synthetic_world
#   python tools/train.py configs/synthetic_world/mixreorg_tiny_synthetic-world-64x64.py
#   python tools/test.py configs/synthetic_world/mixreorg_tiny_synthetic-world-64x64.py CKPT
_base_ = ['./groupvit_tiny_synthetic-world-64x64.py']
model = dict(
    mixer=dict(type='MixReorgMixer', mix_layer=0, group_size=2, unit=1),
    restored_contrastive_loss=dict(
        type='ImageTextContrastiveLoss',
        loss_weight=1.0,
        loss_name='loss_restored_contrastive',
    ),
    mixed_segmentation_loss=dict(
        type='MixedSegmentationLoss', loss_weight=1.0, candidates='group'
    ),
)
