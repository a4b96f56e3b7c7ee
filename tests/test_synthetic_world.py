"""The synthetic image-caption world: determinism, captions that match the
label maps, held-out combinations, MMSeg loading and the shard format."""

import glob
import importlib.util
import io
import itertools
import json
import os
import os.path as osp
import re
import tarfile

import numpy as np
import pytest
import webdataset as wds
from PIL import Image

from mixreorg_mmseg.datasets import (
    SyntheticWorld,
    encode_jpeg,
    write_synthetic_world,
)
from mixreorg_mmseg.datasets.caption_text import plural
from mixreorg_mmseg.datasets.synthetic_world import (
    CAPTION_TEMPLATES,
    SHAPES,
    caption_scene,
    shapes_named,
)
from tests.conftest import REPO_ROOT

SIZE = 32
WORLD_ARGS = dict(
    num_train=40, num_val=8, image_size=SIZE, samples_per_shard=16
)


def _files(root):
    """``{relative path: bytes}`` of every file under ``root``."""
    out = {}
    for path in sorted(glob.glob(osp.join(root, '**', '*'), recursive=True)):
        if osp.isfile(path):
            with open(path, 'rb') as f:
                out[osp.relpath(path, root)] = f.read()
    return out


def _read_shards(paths):
    """``{key: {ext: bytes}}`` of the members of the tar ``paths``."""
    samples = {}
    for path in paths:
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                key, ext = member.name.split('.', 1)
                data = tar.extractfile(member).read()
                samples.setdefault(key, {})[ext] = data
    return samples


def _has_pair(shapes, pairs):
    return any(a in shapes and b in shapes for a, b in pairs)


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('synthetic_world'))
    return write_synthetic_world(root, seed=0, **WORLD_ARGS)


def test_same_seed_writes_identical_bytes_other_seed_differs(world, tmp_path):
    again = write_synthetic_world(str(tmp_path / 'a'), seed=0, **WORLD_ARGS)
    other = write_synthetic_world(str(tmp_path / 'b'), seed=1, **WORLD_ARGS)
    first = _files(world['root'])
    assert len(world['shards']) == 3  # 40 samples, 16 a shard
    assert _files(again['root']) == first
    different = _files(other['root'])
    assert different.keys() == first.keys()
    changed = [p for p in first if first[p] != different[p]]
    # every image, label map and shard is redrawn; the class list and the
    # shards' sample counts are not
    assert sorted(set(first) - set(changed)) == ['classes.txt'] + [
        f'shards/{i:05d}_stats.json' for i in range(3)
    ]


@pytest.mark.parametrize('split', ['train', 'seen', 'unseen'])
def test_captions_name_exactly_the_shapes_visible_in_the_label_map(split):
    world = SyntheticWorld(image_size=SIZE, objects=(1, 4), seed=3)
    min_visible, min_pixels = world.min_visible, world.min_pixels
    for sample in world.samples(split, 60):
        label, objects = sample['label'], sample['objects']
        counts = np.bincount(label.ravel(), minlength=len(world.classes))
        present = {world.classes[i] for i in np.flatnonzero(counts[1:]) + 1}
        assert shapes_named(sample['caption'], world.shapes) == present
        assert {o['shape'] for o in objects} == present
        for obj in objects:
            # no object the caption names is (nearly) hidden
            need = max(min_visible * obj['area'], min_pixels)
            assert obj['visible'] >= need, (sample['caption'], obj)
        assert counts[1:].sum() == sum(o['visible'] for o in objects)


def _obj(shape, colour='red', texture='solid'):
    return dict(shape=shape, colour=colour, texture=texture)


def test_caption_scene_counts_alike_objects_and_names_two_colours():
    rng = np.random.default_rng(0)
    dark = dict(kind='plain', tone='dark')
    objects = [_obj('disc'), _obj('disc'), _obj('star', 'blue')]
    for _ in range(20):
        text = caption_scene(objects, dark, rng).lower()
        assert 'two discs' in text and 'a star' in text, text
        assert 'red' not in text and 'blue' not in text, text
    # one shape in two colours: the caption must tell them apart
    objects = [_obj('disc'), _obj('disc', 'green')]
    for _ in range(20):
        text = caption_scene(objects, dark, rng).lower()
        assert 'a red disc' in text and 'a green disc' in text, text
    striped = [_obj('ring', 'cyan', 'striped')]
    text = caption_scene(striped, dark, rng, texture_prob=1.0).lower()
    assert 'striped ring' in text, text


@pytest.mark.parametrize(
    'templates', sorted(set(CAPTION_TEMPLATES) - {'full'})
)
def test_caption_templates_reword_captions_and_leave_the_images(templates):
    full = list(SyntheticWorld(image_size=SIZE, seed=2).samples('train', 40))
    world = SyntheticWorld(
        image_size=SIZE, seed=2, caption_templates=templates
    )
    assert world.config()['caption_templates'] == templates
    samples = list(world.samples('train', 40))
    again = [s['caption'] for s in world.samples('train', 40)]
    assert [s['caption'] for s in samples] == again  # deterministic
    for mine, other in zip(samples, full, strict=True):
        # captions draw from their own stream: the scenes are the same
        assert np.array_equal(mine['image'], other['image'])
        present = {o['shape'] for o in mine['objects']}
        assert shapes_named(mine['caption'], world.shapes) == present
    reworded = sum(
        m['caption'] != o['caption']
        for m, o in zip(samples, full, strict=True)
    )
    # other frames than the full set's 11-15: most captions differ
    assert reworded > len(samples) // 2


def test_full_templates_keep_their_captions():
    """The default sentence set draws what it always drew: worlds written
    before the other sets existed keep their captions."""
    rng = np.random.default_rng(7)
    light = dict(kind='noise', tone='light')
    scenes = [
        [_obj('disc')],
        [_obj('star', 'blue'), _obj('ring', 'green', 'striped')],
        [_obj('cross'), _obj('cross'), _obj('heart', 'pink', 'dotted')],
    ]
    captions = [
        caption_scene(objs, light, rng, colour_prob=0.3, texture_prob=0.5)
        for objs in scenes
        for _ in range(3)
    ]
    assert captions == [
        'A photo of a disc on a pale background.',
        'a disc.',
        'An image showing a disc.',
        'a photo of a striped green ring and a blue star on a pale '
        'background.',
        'A light background with a star and a ring.',
        'there is a blue star and a green ring.',
        'there is a heart and two crosses on a pale background.',
        'a photo of two crosses and a dotted heart.',
        'a dotted pink heart and two red crosses.',
    ]


def test_caption_template_sets_hold_no_shape_word_and_obey_background_prob():
    shape_words = set(SHAPES) | {plural(s) for s in SHAPES}
    dark = dict(kind='plain', tone='dark')
    objects = [_obj('disc'), _obj('star', 'blue')]
    for name, (list_frames, pair_frames) in CAPTION_TEMPLATES.items():
        for frame in list_frames + pair_frames:
            words = set(re.findall(r'[a-z]+', frame.lower()))
            assert not words & shape_words, (name, frame)
        # background_prob can always pick a sentence with and without it
        assert any('{background}' in t for t in list_frames), name
        assert any('{background}' not in t for t in list_frames), name
        rng = np.random.default_rng(0)
        for prob in (0.0, 1.0):
            for _ in range(10):
                text = caption_scene(
                    objects, dark, rng, background_prob=prob, templates=name
                )
                # the tone word ('dark', 'dark grey') names the background
                assert ('dark' in text) == bool(prob), (name, text)
    with pytest.raises(ValueError, match='caption_templates'):
        SyntheticWorld(caption_templates='poetic')


def test_world_jpegs_are_shard_io_encodes_of_the_drawn_images(world):
    """One JPEG path: the shards hold ``encode_jpeg`` of each RGB image
    (as BGR, the order ``encode_jpeg`` takes)."""
    drawn = SyntheticWorld(image_size=SIZE, seed=0).samples('train', 3)
    samples = _read_shards(world['shards'][:1])
    for i, sample in enumerate(drawn):
        bgr = np.ascontiguousarray(sample['image'][..., ::-1])
        assert samples[f'{i:09d}']['jpg'] == encode_jpeg(bgr)


def test_label_maps_on_disk_match_their_recorded_captions(world):
    shapes = world['classes'][1:]
    for paths in world['splits'].values():
        with open(paths['captions'], encoding='utf-8') as f:
            records = [json.loads(line) for line in f]
        assert len(records) == WORLD_ARGS['num_val']
        for record in records:
            png = osp.join(paths['ann_dir'], record['key'] + '.png')
            label = np.asarray(Image.open(png))
            present = {world['classes'][v] for v in np.unique(label) if v}
            assert shapes_named(record['caption'], shapes) == present, png
            assert set(record['shapes']) == present, png


def test_heldout_pairs_never_appear_in_training_shards(world):
    pairs = world['heldout_pairs']
    shapes = world['classes'][1:]
    assert pairs and all(len(set(p)) == 2 for p in pairs)
    samples = _read_shards(world['shards'])
    assert len(samples) == WORLD_ARGS['num_train']
    multi = 0
    for key, sample in samples.items():
        meta = json.loads(sample['json'])
        named = shapes_named(sample['txt'].decode('utf-8'), shapes)
        assert set(meta['shapes']) == named, key
        assert not _has_pair(named, pairs), (key, named)
        multi += len(named) >= 2
    assert multi > 0  # training does show combinations, only seen ones
    for split, paths in world['splits'].items():
        for png in sorted(glob.glob(osp.join(paths['ann_dir'], '*.png'))):
            values = np.unique(np.asarray(Image.open(png)))
            present = {world['classes'][v] for v in values if v}
            assert len(present) >= 2, png
            assert _has_pair(present, pairs) == (split == 'unseen'), png


def test_held_out_pairs_leave_every_shape_a_seen_partner():
    world = SyntheticWorld(seed=5)
    all_pairs = set(itertools.combinations(world.shapes, 2))
    assert len(world.heldout_pairs) == round(len(all_pairs) / 4)
    seen = all_pairs - set(world.heldout_pairs)
    assert set(world.seen_pairs) == seen
    assert {s for p in seen for s in p} == set(world.shapes)
    fixed = SyntheticWorld(heldout_pairs=[('star', 'disc')])
    assert fixed.heldout_pairs == (('disc', 'star'),)


def test_segmentation_splits_load_through_mmseg_dataset_classes(world):
    from mmseg.datasets import BaseSegDataset
    from mmseg.registry import DATASETS

    classes = world['classes']
    with open(world['classes_file'], encoding='utf-8') as f:
        assert tuple(f.read().split('\n')[:-1]) == classes
    assert classes[0] == 'background'
    for split in ('seen', 'unseen'):
        dataset = DATASETS.build(
            dict(
                type='FolderSegDataset',
                data_root=world['root'],
                data_prefix=dict(
                    img_path=f'images/{split}',
                    seg_map_path=f'annotations/{split}',
                ),
                pipeline=[
                    dict(type='LoadImageFromFile'),
                    dict(type='LoadAnnotations'),
                    dict(type='PackSegInputs'),
                ],
            )
        )
        assert isinstance(dataset, BaseSegDataset)
        assert dataset.metainfo['classes'] == classes
        assert len(dataset) == WORLD_ARGS['num_val']
        for i in range(len(dataset)):
            item = dataset[i]
            assert item['inputs'].shape == (3, SIZE, SIZE)
            labels = item['data_samples'].gt_sem_seg.data.unique()
            assert 0 <= labels.min() and labels.max() < len(classes)


def test_shards_hold_img2dataset_samples_readable_by_webdataset(world):
    for path in world['shards']:
        with tarfile.open(path) as tar:
            names = tar.getnames()
        keys = sorted({n.split('.', 1)[0] for n in names})
        expected = [f'{k}.{ext}' for k in keys for ext in ('jpg', 'txt')]
        expected += [f'{k}.json' for k in keys]
        assert sorted(names) == sorted(expected), path
    dataset = wds.WebDataset(world['shard_pattern'], shardshuffle=False)
    seen_keys = []
    for sample in dataset:
        meta = json.loads(sample['json'])
        assert meta['key'] == sample['__key__']
        assert meta['caption'] == sample['txt'].decode('utf-8')
        image = Image.open(io.BytesIO(sample['jpg']))
        assert image.format == 'JPEG' and image.size == (SIZE, SIZE)
        seen_keys.append(sample['__key__'])
    assert len(seen_keys) == len(set(seen_keys)) == WORLD_ARGS['num_train']


def test_bad_world_arguments_name_the_argument():
    with pytest.raises(ValueError, match='shapes'):
        SyntheticWorld(shapes=['disc', 'blob'])
    with pytest.raises(ValueError, match='objects'):
        SyntheticWorld(objects=(3, 1))
    with pytest.raises(ValueError, match='unseen split needs'):
        list(SyntheticWorld(objects=(1, 1)).samples('unseen', 1))
    with pytest.raises(ValueError, match='background_prob'):
        SyntheticWorld(background_prob=1.5)


def test_default_world_keeps_colour_independent_of_shape():
    world = SyntheticWorld(image_size=SIZE, seed=3)
    assert world.colour_by_shape == 0.0
    assert world.radius_range == (0.125, 1 / 3)
    samples = list(world.samples('train', 200))
    objects = [o for s in samples for o in s['objects']]
    # every shape in several colours and every colour on several shapes:
    # colour alone cannot name a shape
    for shape in world.shapes:
        assert len({o['colour'] for o in objects if o['shape'] == shape}) > 2
    for colour in {o['colour'] for o in objects}:
        assert len({o['shape'] for o in objects if o['colour'] == colour}) > 2
    # colour words are in some captions, not all
    named = [
        any(o['colour'] in s['caption'] for o in s['objects']) for s in samples
    ]
    assert 0 < sum(named) < len(named)


def test_colour_by_shape_gives_every_shape_its_own_colour():
    world = SyntheticWorld(image_size=SIZE, colour_by_shape=1.0)
    objects = [o for s in world.samples('train', 30) for o in s['objects']]
    for obj in objects:
        index = world.shapes.index(obj['shape'])
        assert obj['colour'] == world.colours[index % len(world.colours)]
    with pytest.raises(ValueError, match='colour_by_shape'):
        SyntheticWorld(colour_by_shape=-0.1)


@pytest.mark.parametrize('prob', [0.0, 1.0])
def test_background_prob_decides_whether_captions_name_the_background(prob):
    world = SyntheticWorld(image_size=SIZE, background_prob=prob)
    captions = [s['caption'] for s in world.samples('train', 40)]
    named = ['background' in c for c in captions]
    assert all(named) if prob else not any(named)


def test_make_synthetic_world_tool_writes_and_reports(tmp_path, capsys):
    path = osp.join(REPO_ROOT, 'tools/misc/make_synthetic_world.py')
    spec = importlib.util.spec_from_file_location('make_world', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    root = str(tmp_path / 'world')
    tool.main(
        [root, '--num-train', '20', '--num-val', '4', '--size', '32']
        + ['--objects', '2', '3', '--seed', '7', '--textures', 'solid']
        + ['--radius-range', '0.2', '0.3', '--colour-prob', '0']
        + ['--background-prob', '1', '--caption-templates', 'terse']
    )
    out = capsys.readouterr().out
    assert 'train: 20/20' in out and 'unseen: 4/4' in out
    assert 'images/s' in out
    with open(osp.join(root, 'world.json'), encoding='utf-8') as f:
        info = json.load(f)
    assert info['world']['objects'] == [2, 3]
    assert info['world']['seed'] == 7
    assert info['world']['textures'] == ['solid']
    assert info['world']['radius_range'] == [0.2, 0.3]
    assert info['world']['colour_prob'] == 0
    assert info['world']['background_prob'] == 1
    assert info['world']['caption_templates'] == 'terse'
    # options left out keep the world's defaults
    assert info['world']['texture_prob'] == SyntheticWorld().texture_prob
    assert SyntheticWorld().caption_templates == 'full'
    assert len(os.listdir(osp.join(root, 'images', 'unseen'))) == 4
