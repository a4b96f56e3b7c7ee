# GroupViT ViT-S tested zero-shot (Xu et al., CVPR 2022, Sec. 3.3 and 4.1;
# NVlabs/GroupViT segmentation configs): pixels take their final segment's
# class through the chained grouping assignments; classes are prompted with
# the 'simple' template ("a photo of a {}."), each segment's classes are
# restricted to the image's top 5; sliding window 448 x 448, stride 224, on
# images resized to short side 448 (the dataset bases). The classes come
# from the test dataset (ZeroShotClassesHook); each benchmark config sets
# the background threshold.
_base_ = ['./groupvit_vit-s.py']
model = dict(
    decode_head=dict(
        type='ZeroShotGroupHead',
        templates='simple',
        topk_classes=5,
        bg_thresh=None,
    ),
    test_cfg=dict(mode='slide', crop_size=(448, 448), stride=(224, 224)),
)
custom_hooks = [dict(type='ZeroShotClassesHook')]
