# Zero-shot GroupViT ViT-S on PASCAL VOC 2012 val, 21 classes with
# background (threshold 0.95), GroupViT's protocol (Xu et al., CVPR 2022,
# Sec. 4.1; their reported mIoU 52.3 with GCC + YFCC pre-training).
#   python tools/test.py configs/zero_shot/groupvit_vit-s_voc12.py CKPT
_base_ = [
    '../_base_/models/groupvit_vit-s_zero_shot.py',
    '../_base_/datasets/zero_shot_voc12.py',
    '../_base_/default_runtime.py',
]
model = dict(
    decode_head=dict(
        bg_thresh=0.95,
        # the names GroupViT prompts for MMSeg's compound class names
        prompt_names=dict(
            diningtable='table', pottedplant='plant', tvmonitor='monitor'
        ),
    )
)
