# PASCAL Context val (5105 images), 59 classes + background = 60 classes
# (background counted in mIoU, as GroupViT tests), MMSeg's
# PascalContextDataset (label 0 = background; PascalContextDataset59 would
# ignore it instead). Layout (MMSeg's, label maps from its
# tools/dataset_converters/pascal_context.py):
#   data/VOCdevkit/VOC2010/{JPEGImages,SegmentationClassContext}/
#   data/VOCdevkit/VOC2010/ImageSets/SegmentationContext/val.txt
_base_ = ['./zero_shot_pipeline.py']
test_dataloader = dict(
    dataset=dict(
        type='PascalContextDataset',
        data_root='data/VOCdevkit/VOC2010',
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path='SegmentationClassContext'
        ),
        ann_file='ImageSets/SegmentationContext/val.txt',
    ),
)
