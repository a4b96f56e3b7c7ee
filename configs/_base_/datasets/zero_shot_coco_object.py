# COCO-Object val2017 (5000 images): COCO's 80 thing classes + background
# (81 classes), COCOObjectDataset. Label maps from COCO's instance
# annotations by tools/dataset_converters/coco_object.py:
#   data/coco_object/images/val2017/<id>.jpg
#   data/coco_object/annotations/val2017/<id>_instanceTrainIds.png
_base_ = ['./zero_shot_pipeline.py']
test_dataloader = dict(
    dataset=dict(
        type='COCOObjectDataset',
        data_root='data/coco_object',
        data_prefix=dict(
            img_path='images/val2017', seg_map_path='annotations/val2017'
        ),
    ),
)
