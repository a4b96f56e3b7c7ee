"""Bad image and label-map files: every error names the file."""

import importlib.util
import os.path as osp

import cv2
import numpy as np
import pytest

from mixreorg_mmseg.datasets import (
    BadImageFileError,
    FolderSegDataset,
    check_label_map,
    read_image,
)

from .conftest import REPO_ROOT

PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]


def _bad_files(root):
    """An empty file, a text file and a missing path."""
    empty, text = root / 'empty.jpg', root / 'text.jpg'
    empty.write_bytes(b'')
    text.write_text('not an image')
    return dict(
        empty=(str(empty), 'empty file'),
        text=(str(text), 'can decode'),
        missing=(str(root / 'none.jpg'), 'not found'),
    )


@pytest.mark.parametrize('kind', ['empty', 'text', 'missing'])
def test_bad_image_error_names_the_file(tmp_path, kind):
    path, words = _bad_files(tmp_path)[kind]
    with pytest.raises((BadImageFileError, FileNotFoundError)) as error:
        read_image(path)
    assert path in str(error.value) and words in str(error.value)
    assert error.value.__context__ is None  # no decoder traceback
    with pytest.raises(type(error.value), match=words):
        check_label_map(path)


def test_label_map_of_colours_or_16_bits_is_refused(tmp_path):
    good, rgb, wide = (str(tmp_path / f'{n}.png') for n in 'abc')
    cv2.imwrite(good, np.ones((4, 4), np.uint8))
    cv2.imwrite(rgb, np.ones((4, 4, 3), np.uint8))
    cv2.imwrite(wide, np.full((4, 4), 300, np.uint16))  # would load as 44
    check_label_map(good)
    for path in (rgb, wide):
        with pytest.raises(BadImageFileError, match='one channel of 8-bit'):
            check_label_map(path)


def _folder(root):
    """A FolderSegDataset folder of one good sample."""
    (root / 'images').mkdir(parents=True)
    (root / 'annotations').mkdir()
    (root / 'classes.txt').write_text('background\nthing\n')
    cv2.imwrite(str(root / 'images/a.jpg'), np.zeros((4, 4, 3), np.uint8))
    cv2.imwrite(str(root / 'annotations/a.png'), np.ones((4, 4), np.uint8))
    return str(root / 'images/a.jpg'), str(root / 'annotations/a.png')


# MMSeg's PackSegInputs warns about a 3-channel map before the check runs
@pytest.mark.filterwarnings('ignore:Please pay attention')
@pytest.mark.parametrize(
    'which,content',
    [
        ('image', b''),
        ('label', b''),
        ('label', b'not a png'),
        ('label', cv2.imencode('.png', np.ones((4, 4, 3), np.uint8))[1]),
        ('label', cv2.imencode('.png', np.ones((4, 4), np.uint16))[1]),
    ],
)
def test_dataset_error_names_the_bad_file(
    tmp_path, mmseg_scope, which, content
):
    image, label = _folder(tmp_path)
    bad = image if which == 'image' else label
    with open(bad, 'wb') as file:
        file.write(bytes(content))
    dataset = FolderSegDataset(
        data_root=str(tmp_path),
        data_prefix=dict(img_path='images', seg_map_path='annotations'),
        pipeline=PIPELINE,
        test_mode=True,
    )
    with pytest.raises(BadImageFileError) as error:
        dataset[0]
    assert str(error.value).startswith(bad + ':')
    # the decoder's error, where there was one, is not shown
    assert error.value.__suppress_context__ or error.value.__context__ is None


def test_demo_names_an_empty_image_before_loading_the_model(tmp_path):
    spec = importlib.util.spec_from_file_location(
        'demo_tool', osp.join(REPO_ROOT, 'tools', 'demo.py')
    )
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    empty = tmp_path / 'empty.jpg'
    empty.write_bytes(b'')
    # neither config nor checkpoint exists: the image is read first
    with pytest.raises(BadImageFileError, match='empty file') as error:
        demo.main(
            [str(empty), 'no_config.py', 'no.pth', '--classes', 'cat,dog']
        )
    assert str(error.value).startswith(str(empty) + ':')


def test_zero_shot_api_names_a_bad_image_path(tmp_path):
    from mixreorg_mmseg.apis import prepare_image, zero_shot_predict

    path, _ = _bad_files(tmp_path)['text']
    for call in (zero_shot_predict, prepare_image):
        # the file is checked before the model is used
        with pytest.raises(BadImageFileError, match='OpenCV can decode'):
            call(None, path)
