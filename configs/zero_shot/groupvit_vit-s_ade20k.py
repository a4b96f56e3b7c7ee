# Zero-shot GroupViT ViT-S on ADE20K val, 150 classes, no background class
# (pixels labelled "other" are ignored), with GroupViT's resolution and
# sliding window; MixReorg (Cai et al., ICCV 2023) reports this benchmark.
#   python tools/test.py configs/zero_shot/groupvit_vit-s_ade20k.py CKPT
_base_ = [
    '../_base_/models/groupvit_vit-s_zero_shot.py',
    '../_base_/datasets/zero_shot_ade20k.py',
    '../_base_/default_runtime.py',
]
model = dict(decode_head=dict(bg_thresh=None))
