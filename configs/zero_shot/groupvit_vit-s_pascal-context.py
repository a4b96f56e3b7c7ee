# Zero-shot GroupViT ViT-S on PASCAL Context val, 59 classes + background
# (threshold 0.35), GroupViT's protocol (Xu et al., CVPR 2022, Sec. 4.1;
# their reported mIoU 22.4 with GCC + YFCC pre-training).
#   python tools/test.py configs/zero_shot/groupvit_vit-s_pascal-context.py CKPT
_base_ = [
    '../_base_/models/groupvit_vit-s_zero_shot.py',
    '../_base_/datasets/zero_shot_pascal_context.py',
    '../_base_/default_runtime.py',
]
model = dict(
    decode_head=dict(
        bg_thresh=0.35,
        # the names GroupViT prompts for MMSeg's compound class names
        prompt_names=dict(
            aeroplane='airplane', pottedplant='plant', tvmonitor='monitor'
        ),
    )
)
