# GroupViT ViT-S pre-trained on CC12M image-caption pairs: the baseline that
# MixReorg (configs/mixreorg_vit-s_cc12m.py) is compared against; the same
# model and code with mixing off.
#   python tools/train.py configs/groupvit_vit-s_cc12m.py
#   bash tools/dist_train.sh configs/groupvit_vit-s_cc12m.py 8
_base_ = [
    '_base_/models/groupvit_vit-s.py',
    '_base_/datasets/image_text_shards.py',
    '_base_/default_runtime.py',
    '_base_/schedules/schedule_groupvit_30e.py',
]
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(by_epoch=True, interval=1, max_keep_ckpts=3),
)
