"""Captions tokenized in the data pipeline (``TokenizeCaption``) against
the segmentor's own string path."""

import copy
import itertools
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmseg.registry import MODELS, TRANSFORMS
from mmseg.structures import SegDataSample

from mixreorg_mmseg.datasets.synthetic_world import DEFAULT_SHAPES
from mixreorg_mmseg.utils.prompt_templates import PROMPT_TEMPLATES

from .conftest import REPO_ROOT, tiny_groupvit_cfg

WORLD_CONFIG = 'configs/synthetic_world/{}_tiny_synthetic-world-64x64.py'
CAPTIONS = [
    'a photo of a disc and a square.',
    'a triangle next to a square.',
    'there is a disc.',
    'a square, a triangle and a disc.',
    'an image of nothing we know.',
    'two squares on their own.',
]


def pipeline_samples(transform, captions):
    """Data samples as PackSegInputs leaves them after ``transform``."""
    samples = []
    for i, caption in enumerate(captions):
        results = transform(dict(caption=caption, img_path=f'{i}.jpg'))
        meta = {k: v for k, v in results.items()}
        samples.append(SegDataSample(metainfo=meta))
    return samples


def string_samples(captions):
    return [
        SegDataSample(metainfo=dict(caption=c, img_path=f'{i}.jpg'))
        for i, c in enumerate(captions)
    ]


def test_transform_adds_caption_and_prompt_tokens():
    transform = TRANSFORMS.build(
        dict(
            type='TokenizeCaption',
            context_length=16,
            max_nouns=3,
            vocabulary=['disc', 'square', 'triangle'],
        )
    )
    out = transform(dict(caption='a disc beside two squares.'))
    assert out['caption_tokens'].shape == (16,)
    assert out['caption_tokens'].dtype == torch.long
    assert out['prompt_tokens'].shape == (3, 16)
    assert out['prompt_valid'].tolist() == [True, True, False]
    assert not out['prompt_tokens'][2].any()
    from mixreorg_mmseg.utils.clip_tokens import tokenize

    expected = tokenize(['a photo of a disc.', 'a photo of a square.'], 16)
    assert torch.equal(out['prompt_tokens'][:2], expected)


def test_transform_without_nouns_adds_caption_tokens_only():
    transform = TRANSFORMS.build(
        dict(type='TokenizeCaption', context_length=8, max_nouns=None)
    )
    out = transform(dict(caption='a disc'))
    assert set(out) == {'caption', 'caption_tokens'}


def test_transform_names_a_missing_caption_and_a_missing_vocabulary(
    tmp_path,
):
    transform = TRANSFORMS.build(dict(type='TokenizeCaption'))
    with pytest.raises(KeyError, match='caption.*x.jpg'):
        transform(dict(img_path='x.jpg'))
    missing = str(tmp_path / 'classes.txt')
    transform = TRANSFORMS.build(
        dict(type='TokenizeCaption', vocabulary=missing)
    )
    with pytest.raises(FileNotFoundError, match='TokenizeCaption.vocabulary'):
        transform(dict(caption='a disc'))


def test_transform_draws_one_of_the_templates_per_noun():
    transform = TRANSFORMS.build(
        dict(type='TokenizeCaption', max_nouns=2, templates='imagenet')
    )
    from mixreorg_mmseg.utils.clip_tokens import tokenize

    allowed = tokenize(
        [t.format('dog') for t in PROMPT_TEMPLATES['imagenet']], 77
    )
    torch.manual_seed(0)
    seen = set()
    for _ in range(20):
        row = transform(dict(caption='a dog'))['prompt_tokens'][0]
        match = (allowed == row).all(dim=1).nonzero().flatten().tolist()
        assert len(match) == 1
        seen.add(match[0])
    assert len(seen) > 1  # drawn, not fixed


@pytest.mark.parametrize('name', ['groupvit', 'mixreorg'])
def test_pipeline_tokens_give_the_string_path_losses_bit_for_bit(
    tmp_path, name
):
    """The synthetic world's config: its train pipeline's TokenizeCaption
    and the model's own tokenization give the same tokens, so the same
    operations in the same order: the losses are equal exactly."""
    cfg = Config.fromfile(osp.join(REPO_ROOT, WORLD_CONFIG.format(name)))
    classes = tmp_path / 'classes.txt'
    classes.write_text('background\n' + '\n'.join(DEFAULT_SHAPES) + '\n')
    cfg.model.noun_prompts.vocabulary = str(classes)
    (step,) = [
        t
        for t in cfg.train_dataloader.dataset.pipeline
        if t['type'] == 'TokenizeCaption'
    ]
    step = dict(step, vocabulary=str(classes))
    captions = [
        f'a {a} next to a {b}.'
        for a, b in itertools.pairwise(DEFAULT_SHAPES)
    ] + ['an empty field.', f'two {DEFAULT_SHAPES[0]}s.']
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).train()
    inputs = torch.randn(len(captions), 3, 64, 64)
    losses = {}
    for path, samples in (
        ('string', string_samples(captions)),
        ('tokens', pipeline_samples(TRANSFORMS.build(step), captions)),
    ):
        torch.manual_seed(1)
        losses[path] = model(inputs, samples, mode='loss')
    assert model.pipeline_tokens_checked
    assert losses['string'].keys() == losses['tokens'].keys()
    for key, value in losses['string'].items():
        assert torch.equal(value, losses['tokens'][key]), key


def test_first_batch_check_names_the_settings_that_differ(
    tmp_path, toy_captions_root
):
    cfg = tiny_groupvit_cfg(toy_captions_root, tmp_path)
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cfg.model)).train()
    inputs = torch.randn(len(CAPTIONS), 3, 32, 32)
    context = model.text_encoder.context_length
    vocabulary = ['disc', 'square', 'triangle']
    wrong = [
        (dict(context_length=context + 1), 'context_length'),
        (dict(vocabulary=['disc']), 'noun_prompts'),
        (dict(templates=['an image of a {}.']), 'templates'),
    ]
    for override, message in wrong:
        step = dict(
            type='TokenizeCaption',
            context_length=context,
            max_nouns=3,
            vocabulary=vocabulary,
        )
        step.update(override)
        samples = pipeline_samples(TRANSFORMS.build(step), CAPTIONS)
        model.pipeline_tokens_checked = False
        with pytest.raises(ValueError, match=message):
            model(inputs, samples, mode='loss')
    step = dict(type='TokenizeCaption', context_length=context, max_nouns=None)
    samples = pipeline_samples(TRANSFORMS.build(step), CAPTIONS)
    with pytest.raises(KeyError, match='max_nouns'):
        model(inputs, samples, mode='loss')


def test_samples_without_tokens_take_the_string_path(
    tmp_path, toy_captions_root
):
    cfg = tiny_groupvit_cfg(toy_captions_root, tmp_path)
    model = MODELS.build(copy.deepcopy(cfg.model))
    tokens = model.caption_tokens_of(string_samples(CAPTIONS))
    assert torch.equal(tokens.captions, model.text_encoder.tokenize(CAPTIONS))
    assert tokens.valid.shape == (len(CAPTIONS), 3)
    assert not model.pipeline_tokens_checked
