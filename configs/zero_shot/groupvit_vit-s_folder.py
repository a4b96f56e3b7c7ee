# Zero-shot GroupViT ViT-S on a folder of your own (FolderSegDataset: its
# classes.txt names the classes, background first when it has one):
#   python tools/test.py configs/zero_shot/groupvit_vit-s_folder.py CKPT \
#     --cfg-options test_dataloader.dataset.data_root=data/my_dataset \
#                   model.decode_head.bg_thresh=0.95
# bg_thresh=None (the default here): every class, class 0 included, is
# prompted; a number: class 0 is background, by the threshold rule.
_base_ = [
    '../_base_/models/groupvit_vit-s_zero_shot.py',
    '../_base_/datasets/zero_shot_folder.py',
    '../_base_/default_runtime.py',
]
model = dict(decode_head=dict(bg_thresh=None))
