# A tiny MixReorg trained from the toy shapes' captions on CPU in seconds:
# the tiny GroupViT of groupvit_tiny_toy-captions-64x64.py with the mixer
# on, as configs/_base_/models/mixreorg_vit-s.py turns it on for ViT-S
# (tokens mixed at the end of stage 1, groups of 2 images, single patches;
# the restored-feature and mixed-segmentation losses at their defaults).
# Data: tools/misc/make_toy_image_captions.py data/toy_image_captions
_base_ = ['./groupvit_tiny_toy-captions-64x64.py']
model = dict(
    mixer=dict(type='MixReorgMixer', mix_layer=2, group_size=2, unit=1),
)
