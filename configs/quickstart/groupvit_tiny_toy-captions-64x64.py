# A tiny GroupViT trained from the toy shapes' captions on CPU in seconds:
# the same model code as configs/groupvit_vit-s_cc12m.py, scaled down
# (configs/_base_/models/groupvit_tiny.py). Data:
#   python tools/misc/make_toy_image_captions.py data/toy_image_captions
_base_ = [
    '../_base_/models/groupvit_tiny.py',
    '../_base_/datasets/toy_image_captions.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_toy_captions_200i.py',
]
model = dict(
    # the toy vocabulary names every object, so nouns are found exactly
    noun_prompts=dict(vocabulary={{_base_.caption_vocabulary}}),
)
default_hooks = dict(checkpoint=dict(interval=100))
