# Any folder in MMSeg's layout, its classes in classes.txt (one a line,
# background first when there is one), read by FolderSegDataset:
#   <root>/classes.txt
#   <root>/images/**/<name>.jpg
#   <root>/annotations/**/<name>.png   uint8, value i = line i, 255 ignored
# Set the root with --cfg-options test_dataloader.dataset.data_root=<root>
# (images/annotations are searched recursively: point data_prefix at a
# split, e.g. data_prefix.img_path=images/val, to test one).
_base_ = ['./zero_shot_pipeline.py']
test_dataloader = dict(
    dataset=dict(
        type='FolderSegDataset',
        data_root='data/my_dataset',
        data_prefix=dict(img_path='images', seg_map_path='annotations'),
    ),
)
