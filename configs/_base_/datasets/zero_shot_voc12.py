# PASCAL VOC 2012 val (1449 images), 20 classes + background (21 classes,
# 255 = ignored borders), MMSeg's PascalVOCDataset. Layout (MMSeg's):
#   data/VOCdevkit/VOC2012/{JPEGImages,SegmentationClass}/
#   data/VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt
_base_ = ['./zero_shot_pipeline.py']
test_dataloader = dict(
    dataset=dict(
        type='PascalVOCDataset',
        data_root='data/VOCdevkit/VOC2012',
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path='SegmentationClass'
        ),
        ann_file='ImageSets/Segmentation/val.txt',
    ),
)
