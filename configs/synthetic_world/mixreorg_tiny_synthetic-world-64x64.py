# README's main job: the synthetic world's MixReorg, which is
# groupvit_tiny_synthetic-world-64x64.py with the mixing switched on (same
# world, schedule and budget): groups of 2 images, single patches, the
# restored-feature contrastive loss at weight 1, as
# configs/_base_/models/mixreorg_vit-s.py switches it on for ViT-S, except
# in two places:
# - the tokens are mixed right after the patch embedding (raw patches,
#   mix_layer=0), not at the end of stage 1: tokens mixed after attention
#   carry their own image's identity into the mixed image, where the
#   grouping can learn "which image" instead of "which shape". Mixing after
#   context (mix_layer=2) is the contextual_mixing run of
#   tools/benchmark/synthetic_world_study.py;
# - the mixed-image segmentation loss is off (weight 0; its accuracy is
#   still logged): where colour, fill and background tell two mixed images
#   apart, each token can name its image's caption without any shape, and
#   the grouping learns to follow those instead of the objects. Without it
#   every world of the study validates higher on its seen pairs (the
#   mixed_seg_loss run puts it back).
# How each choice was measured: docs/benchmarks.md.
#   python tools/misc/make_synthetic_world.py data/synthetic_world
#   python tools/train.py configs/synthetic_world/mixreorg_tiny_synthetic-world-64x64.py
#   python tools/test.py configs/synthetic_world/mixreorg_tiny_synthetic-world-64x64.py CKPT
_base_ = ['./groupvit_tiny_synthetic-world-64x64.py']
model = dict(
    mixer=dict(
        type='MixReorgMixer',
        mix_layer=0,
        group_size=2,
        unit=1,
        restored_contrastive_loss=dict(
            type='ImageTextContrastiveLoss',
            loss_weight=1.0,
            loss_name='loss_restored_contrastive',
        ),
        mixed_segmentation_loss=dict(
            type='MixedSegmentationLoss', loss_weight=0.0, candidates='group'
        ),
    ),
)
