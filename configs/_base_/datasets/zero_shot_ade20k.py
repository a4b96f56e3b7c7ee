# ADE20K val (2000 images), 150 classes, no background (label 0 = "other"
# is ignored: reduce_zero_label), MMSeg's ADE20KDataset. Layout (MMSeg's):
#   data/ade/ADEChallengeData2016/images/validation/<name>.jpg
#   data/ade/ADEChallengeData2016/annotations/validation/<name>.png
_base_ = ['./zero_shot_pipeline.py']
test_dataloader = dict(
    dataset=dict(
        type='ADE20KDataset',
        data_root='data/ade/ADEChallengeData2016',
        data_prefix=dict(
            img_path='images/validation',
            seg_map_path='annotations/validation',
        ),
    ),
)
