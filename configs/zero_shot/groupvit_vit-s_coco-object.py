# Zero-shot GroupViT ViT-S on COCO-Object val2017, 80 things + background
# (threshold 0.95), GroupViT's protocol (Xu et al., CVPR 2022, Sec. 4.1;
# their reported mIoU 24.3 with GCC + YFCC pre-training). Label maps:
#   python tools/dataset_converters/coco_object.py data/coco
#   python tools/test.py configs/zero_shot/groupvit_vit-s_coco-object.py CKPT
_base_ = [
    '../_base_/models/groupvit_vit-s_zero_shot.py',
    '../_base_/datasets/zero_shot_coco_object.py',
    '../_base_/default_runtime.py',
]
model = dict(decode_head=dict(bg_thresh=0.95))
