# MixReorg ViT-S pre-trained on CC12M image-caption pairs (the paper's
# setting, arXiv 2308.04829), GroupViT's schedule and augmentation.
#   python tools/train.py configs/mixreorg_vit-s_cc12m.py
#   bash tools/dist_train.sh configs/mixreorg_vit-s_cc12m.py 8
# The GroupViT baseline is configs/groupvit_vit-s_cc12m.py: the same model
# and data with the mixer off.
_base_ = [
    '_base_/models/mixreorg_vit-s.py',
    '_base_/datasets/image_text_shards.py',
    '_base_/default_runtime.py',
    '_base_/schedules/schedule_groupvit_30e.py',
]
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(by_epoch=True, interval=1, max_keep_ckpts=3),
)
