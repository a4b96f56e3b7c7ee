# The synthetic world's GroupViT: the tiny GroupViT trained on the world's
# caption shards for 6 epochs, validated zero-shot on the `seen` split after
# each epoch (best checkpoint kept) and tested on the held-out `unseen`
# shape pairs, through tools/test.py and IoUMetric.
# mixreorg_tiny_synthetic-world-64x64.py is this config with the mixing
# switched on, nothing else changed.
#   python tools/misc/make_synthetic_world.py data/synthetic_world
#   python tools/train.py configs/synthetic_world/groupvit_tiny_synthetic-world-64x64.py
#   python tools/test.py configs/synthetic_world/groupvit_tiny_synthetic-world-64x64.py CKPT
# For a world written elsewhere, point the three loaders' data_root,
# model.noun_prompts.vocabulary and the train pipeline's TokenizeCaption
# (train_dataloader.dataset.pipeline.3.vocabulary) at it (or change
# world_root in configs/_base_/datasets/synthetic_world.py).
# The model is the tiny GroupViT (configs/_base_/models/groupvit_tiny.py)
# with a convolutional stem in place of the 8x8 patch projection, one
# grouping stage of 8 groups (2 + 2 layers) instead of two (8 then 4), and
# final segments read out of the patch embeddings they own; what each
# choice changes: docs/benchmarks.md ("Learning on the synthetic world").
_base_ = [
    '../_base_/models/groupvit_tiny.py',
    '../_base_/datasets/synthetic_world.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_synthetic_world_6e.py',
]
model = dict(
    backbone=dict(
        # three stride-2 3x3 convolutions instead of the 8x8 patch
        # projection (Xiao et al. 2021): the largest single gain in
        # learning speed here
        stem_channels=(16, 32, 64),
        # three 3x3 convolutions at each resolution (two of stride 1 after
        # the stride-2 one): the outline, not the colour, tells the shapes
        # apart, and told the answer (tools/analysis_tools/shape_probe.py)
        # the backbone learns them several times faster with them
        stem_convs_per_stride=3,
        # one grouping stage: 8 final segments for at most 3 objects and
        # the background (a second grouping into 4 merged touching
        # objects of different shapes into one segment and one class)
        depths=(2, 2),
        num_heads=(2, 2),
        num_group_tokens=(8, 0),
        num_output_groups=(8,),
        # a final segment is the average of the patch embeddings it owns
        # (then an MLP), not the last stage's token: no context of the
        # rest of the image reaches it, so an object's segment cannot take
        # the class of the object beside it (the held-out pairs' largest
        # error with the group tokens, docs/benchmarks.md)
        segment_readout='patch',
    ),
    # the nouns the multi-label loss contrasts are the world's shape names,
    # read from its classes.txt when training starts
    noun_prompts=dict(vocabulary={{_base_.world_classes}}),
    # each noun is scored by the image's best segment (not by the pooled
    # image embedding): what zero-shot inference scores, segments against
    # class prompts, is what this loss trains
    multi_label_loss=dict(type='MultiLabelContrastiveLoss', pooling='max'),
    # every image uses several groups, each token one clearly: without it
    # the grouping collapses to one segment per image
    group_usage_loss=dict(type='GroupUsageLoss', loss_weight=0.5),
    decode_head=dict(
        type='ZeroShotGroupHead',
        templates='simple',
        topk_classes=None,
        # GroupViT's background rule on the cosine similarity rather than
        # the class probability (the softmax over 8 classes gives
        # background segments probabilities as high as objects')
        bg_thresh=0.5,
        bg_score='cosine',
        # each pixel's segment decided after its map is refined by the
        # image's colours (PAMR's settings): segments follow the objects'
        # edges rather than the 8 px token grid's
        refine=dict(type='PixelAdaptiveRefinement'),
    ),
    test_cfg=dict(mode='whole'),
)
log_processor = dict(by_epoch=True)
default_hooks = dict(
    logger=dict(interval=25),
    checkpoint=dict(
        by_epoch=True, interval=1, max_keep_ckpts=1, save_best='mIoU'
    ),
)
