"""The zero-shot head: GroupViT's pixel -> segment -> class inference."""

import copy
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import ConfigDict
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from mixreorg_mmseg.apis.zero_shot import parse_class_names
from mixreorg_mmseg.models.decode_heads import (
    PixelAdaptiveRefinement,
    ZeroShotGroupHead,
    set_zero_shot_classes,
)

from .conftest import tiny_groupvit_cfg

CLASSES = ('background', 'cat', 'dog', 'bird')


def one_hot_assignment(groups):
    """``[1, S, N]`` hard assignment: token ``n`` -> group ``groups[n]``."""
    groups = torch.tensor(groups)
    return F.one_hot(groups, int(groups.max()) + 1).t().float()[None]


class FakeText:
    """``encode_text`` whose embedding of a prompt is the basis vector of
    the class named in it; counts its calls."""

    def __init__(self, names):
        self.names = list(names)
        self.calls = 0

    def __call__(self, sentences):
        self.calls += 1
        rows = []
        for sentence in sentences:
            hits = [
                i for i, n in enumerate(self.names) if f' {n}.' in sentence
            ]
            assert len(hits) == 1, sentence
            rows.append(F.one_hot(torch.tensor(hits[0]), 4).float())
        return torch.stack(rows)


def unit(*values):
    return F.normalize(torch.tensor(values, dtype=torch.float), dim=-1)


def fake_feats(segment_embeds, image_embed, encode_text, version=0):
    """A 2 x 2 patch grid; stage 1 keeps the 4 patches apart, stage 2 maps
    patches 0, 1, 2, 3 to final segments 0, 1, 2, 2."""
    assignments = [
        dict(soft=one_hot_assignment([0, 1, 2, 3])),
        dict(soft=one_hot_assignment([0, 1, 2, 2])),
    ]
    return dict(
        image_embed=image_embed[None],
        segment_embeds=torch.stack(segment_embeds)[None],
        output=SimpleNamespace(assignments=assignments, hw_shape=(2, 2)),
        encode_text=encode_text,
        text_version=version,
        logit_scale=torch.tensor(100.0),
    )


METAS = [dict(img_shape=(4, 4), ori_shape=(4, 4))]


def test_hand_set_embeddings_give_the_exact_mask_with_background():
    head = ZeroShotGroupHead(class_names=CLASSES, bg_thresh=0.95)
    text = FakeText(['cat', 'dog', 'bird'])
    # segment 0 is a cat, segment 1 half dog half bird (no class reaches
    # 0.95: background), segment 2 a bird
    feats = fake_feats(
        [unit(1, 0, 0, 0), unit(0, 1, 1, 0), unit(0, 0, 1, 0)],
        unit(1, 1, 1, 0),
        text,
    )
    logits = head.predict(feats, METAS)
    assert logits.shape == (1, 4, 4, 4)
    # each patch covers a 2 x 2 block of the 4 x 4 input
    expected = torch.tensor(
        [
            [1, 1, 0, 0],
            [1, 1, 0, 0],
            [3, 3, 3, 3],
            [3, 3, 3, 3],
        ]
    )
    assert torch.equal(logits.argmax(1)[0], expected)
    assert torch.equal(logits[0, 0], (expected == 0).float())
    assert text.calls == 1


def test_the_threshold_falls_to_the_best_segment_score():
    # at logit scale 1 no class probability comes near 0.95: the threshold
    # falls to the best segment score, so the cat segment stays foreground
    # and the less confident ones are background
    head = ZeroShotGroupHead(class_names=CLASSES, bg_thresh=0.95)
    feats = fake_feats(
        [unit(1, 0, 0, 0), unit(0, 1, 1, 0), unit(0, 0.2, 1, 0)],
        unit(1, 1, 1, 0),
        FakeText(['cat', 'dog', 'bird']),
    )
    feats['logit_scale'] = torch.tensor(1.0)
    scores = head.segment_class_scores(
        feats['segment_embeds'], feats['image_embed'], torch.eye(3, 4), 1.0
    )
    best = scores[0].max(-1).values
    assert best.max() < 0.95
    assert best[1] < best[2] < best[0]
    mask = head.predict(feats, METAS).argmax(1)[0]
    assert mask.tolist() == [[1, 1, 0, 0]] * 2 + [[0, 0, 0, 0]] * 2


def test_cosine_rule_sends_a_segment_far_from_every_class_to_background():
    # segment 1 is far from every class (cosine 0.3 with "dog", 0 with the
    # others) yet the softmax at scale 100 makes it a certain dog; the
    # cosine rule marks it background, the probability rule does not
    feats = fake_feats(
        [unit(1, 0, 0, 0), unit(0, 0.3, 0, 1), unit(0, 0, 1, 0)],
        unit(1, 1, 1, 0),
        FakeText(['cat', 'dog', 'bird']),
    )
    by_probability = ZeroShotGroupHead(class_names=CLASSES, bg_thresh=0.9)
    by_cosine = ZeroShotGroupHead(
        class_names=CLASSES, bg_thresh=0.5, bg_score='cosine'
    )
    assert by_probability.predict(feats, METAS).argmax(1)[0].tolist() == (
        [[1, 1, 2, 2]] * 2 + [[3, 3, 3, 3]] * 2
    )
    assert by_cosine.predict(feats, METAS).argmax(1)[0].tolist() == (
        [[1, 1, 0, 0]] * 2 + [[3, 3, 3, 3]] * 2
    )


def test_without_background_every_class_is_prompted_and_scored():
    head = ZeroShotGroupHead(class_names=('cat', 'dog', 'bird'))
    text = FakeText(['cat', 'dog', 'bird'])
    feats = fake_feats(
        [unit(1, 0, 0, 0), unit(0, 1, 1, 0), unit(0, 0, 1, 0)],
        unit(1, 1, 1, 0),
        text,
    )
    assert head.prompts() == [
        'a photo of a cat.',
        'a photo of a dog.',
        'a photo of a bird.',
    ]
    mask = head.predict(feats, METAS).argmax(1)[0]
    # segment 1 is a dog/bird tie: the first of the two wins
    assert mask.tolist() == [[0, 0, 1, 1]] * 2 + [[2, 2, 2, 2]] * 2


def test_top_k_keeps_only_the_image_best_classes():
    # the image looks like a cat only: with top-1 every segment is a cat
    # (GroupViT's restriction), without it the bird segment is a bird
    segments = [unit(1, 0, 0, 0), unit(0, 1, 0, 0), unit(0, 0, 1, 0)]
    text = torch.eye(3, 4)
    restricted = ZeroShotGroupHead(class_names=CLASSES[1:], topk_classes=1)
    free = ZeroShotGroupHead(class_names=CLASSES[1:], topk_classes=None)
    image = unit(1, 0, 0, 0)[None]
    seg = torch.stack(segments)[None]
    top1 = restricted.segment_class_scores(seg, image, text, 100.0)
    plain = free.segment_class_scores(seg, image, text, 100.0)
    assert top1.argmax(-1).tolist() == [[0, 0, 0]]
    assert plain.argmax(-1).tolist() == [[0, 1, 2]]
    assert torch.allclose(plain.sum(-1), torch.ones(1, 3))
    # restricted softmax (all on the cat) times the plain softmax
    assert torch.allclose(top1[..., 0], plain[..., 0])
    assert (top1[..., 1:] == 0).all()


def test_templates_are_averaged_then_normalised():
    head = ZeroShotGroupHead(
        class_names=('cat', 'dog'),
        templates=['a {}.', 'the {}.'],
        topk_classes=None,
    )

    def encode(sentences):
        table = {
            'a cat.': [2.0, 0, 0],
            'the cat.': [0, 2.0, 0],
            'a dog.': [0, 0, 1.0],
            'the dog.': [0, 0, 3.0],
        }
        return torch.tensor([table[s] for s in sentences])

    embeds = head.class_embeddings(encode, 0)
    root_half = 2**-0.5
    assert torch.allclose(
        embeds, torch.tensor([[root_half, root_half, 0], [0, 0, 1.0]])
    )


def test_prompt_names_rename_classes_in_the_prompts():
    head = ZeroShotGroupHead(
        class_names=('background', 'pottedplant', 'cat'),
        prompt_names=dict(pottedplant='potted plant'),
        bg_thresh=0.5,
    )
    assert head.prompts() == [
        'a photo of a potted plant.',
        'a photo of a cat.',
    ]
    assert head.num_classes == head.out_channels == 3


def test_class_embeddings_are_cached_per_classes_and_text_version():
    head = ZeroShotGroupHead()
    head.set_class_names(('cat', 'dog', 'bird'))
    text = FakeText(['cat', 'dog', 'bird'])
    first = head.class_embeddings(text, 'v1')
    assert head.class_embeddings(text, 'v1') is first
    assert text.calls == 1
    head.class_embeddings(text, 'v2')
    assert text.calls == 2
    head.set_class_names(('dog', 'bird'))
    assert head.class_embeddings(text, 'v2').shape == (2, 4)
    assert text.calls == 3


def test_prompts_are_encoded_in_batches():
    head = ZeroShotGroupHead(
        class_names=('cat', 'dog', 'bird'), text_batch_size=2
    )
    text = FakeText(['cat', 'dog', 'bird'])
    assert head.class_embeddings(text).shape == (3, 4)
    assert text.calls == 2


def test_without_class_names_predict_says_how_to_set_them():
    head = ZeroShotGroupHead(bg_thresh=0.5)
    assert head.num_classes is None
    feats = fake_feats(
        [unit(1, 0, 0, 0)] * 3, unit(1, 0, 0, 0), FakeText(['cat'])
    )
    with pytest.raises(RuntimeError, match='ZeroShotClassesHook'):
        head.predict(feats, METAS)


@pytest.mark.parametrize(
    'kwargs, error, match',
    [
        (dict(bg_thresh=1.5), ValueError, 'bg_thresh'),
        (dict(topk_classes=0), ValueError, 'topk_classes'),
        (dict(bg_score='logit'), ValueError, 'bg_score'),
        (dict(templates='nope'), KeyError, 'nope'),
        (dict(templates=['no field']), ValueError, 'templates'),
        (dict(class_names=['cat', 'cat']), ValueError, 'cat'),
        (dict(class_names=['cat']), ValueError, 'at least 2'),
        (
            dict(class_names=['cat', 'dog'], prompt_names=dict(cow='a')),
            ValueError,
            'cow',
        ),
    ],
)
def test_bad_head_config_fails_at_build_naming_the_key(kwargs, error, match):
    with pytest.raises(error, match=match):
        ZeroShotGroupHead(**kwargs)


def test_dataset_classes_must_match_the_configured_ones():
    head = ZeroShotGroupHead(class_names=('cat', 'dog'))
    with pytest.raises(ValueError, match='decode_head.class_names'):
        head.set_class_names(('cat', 'bird'))


# -- with the tiny GroupViT segmentor -----------------------------------------


@pytest.fixture
def tiny_segmentor(tmp_path, toy_captions_root):
    cfg = tiny_groupvit_cfg(toy_captions_root, tmp_path)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.decode_head = dict(type='ZeroShotGroupHead', bg_thresh=0.5)
    torch.manual_seed(0)
    model = MODELS.build(model_cfg).eval()
    set_zero_shot_classes(model, ('background', 'disc', 'square', 'triangle'))
    return model


def _samples(n, h, w):
    return [
        SegDataSample(metainfo=dict(ori_shape=(h, w), img_shape=(h, w)))
        for _ in range(n)
    ]


def test_segmentor_predicts_whole_and_sliding_window(tiny_segmentor):
    model = tiny_segmentor
    assert model.num_classes == model.out_channels == 4
    inputs = torch.randn(
        2, 3, 32, 48, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        whole = model.predict(inputs, _samples(2, 32, 48))
    assert whole[0].seg_logits.data.shape == (4, 32, 48)
    assert whole[0].pred_sem_seg.data.shape == (1, 32, 48)
    model.test_cfg = ConfigDict(
        mode='slide', crop_size=(32, 32), stride=(16, 16)
    )
    with torch.no_grad():
        slide = model.predict(inputs[:1], _samples(1, 32, 48))
    assert slide[0].seg_logits.data.shape == (4, 32, 48)
    pred = slide[0].pred_sem_seg.data
    assert pred.min() >= 0 and pred.max() < 4


def test_segmentor_hands_the_refining_head_each_crop(tiny_segmentor):
    model = tiny_segmentor
    seen = []

    class Recording(PixelAdaptiveRefinement):
        def forward(self, image, maps):
            seen.append(image.clone())
            return super().forward(image, maps)

    model.decode_head.refine = Recording(dilations=(1, 2), num_iter=2)
    model.test_cfg = ConfigDict(
        mode='slide', crop_size=(32, 32), stride=(16, 16)
    )
    inputs = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        out = model.predict(inputs, _samples(1, 32, 48))
    assert out[0].seg_logits.data.shape == (4, 32, 48)
    # two crops, each refined by its own pixels
    assert [tuple(s.shape) for s in seen] == [(1, 3, 32, 32)] * 2
    assert torch.equal(seen[0], inputs[..., :32])
    assert torch.equal(seen[1], inputs[..., 16:])


def test_cache_is_hit_across_crops_and_dropped_after_a_text_update(
    tiny_segmentor,
):
    model = tiny_segmentor
    calls = []
    encode_text = model.encode_text

    def counting(texts):
        calls.append(list(texts))
        return encode_text(texts)

    model.encode_text = counting
    model.test_cfg = ConfigDict(
        mode='slide', crop_size=(32, 32), stride=(16, 16)
    )
    inputs = torch.randn(1, 3, 32, 64)
    with torch.no_grad():
        model.predict(inputs, _samples(1, 32, 64))  # 3 crops
        model.predict(inputs, _samples(1, 32, 64))
    assert len(calls) == 1
    assert calls[0] == [
        'a photo of a disc.',
        'a photo of a square.',
        'a photo of a triangle.',
    ]

    # one optimizer step on the text side changes its weights in place
    optimizer = torch.optim.SGD(model.text_projector.parameters(), lr=0.1)
    model.train()
    loss = model.encode_text(['a disc', 'a square']).square().sum()
    loss.backward()
    optimizer.step()
    model.eval()
    assert len(calls) == 2  # the loss itself encoded one text
    with torch.no_grad():
        model.predict(inputs, _samples(1, 32, 64))
    assert len(calls) == 3
    with torch.no_grad():
        model.predict(inputs, _samples(1, 32, 64))
    assert len(calls) == 3


def test_set_zero_shot_classes_needs_a_zero_shot_head(
    tmp_path, toy_captions_root
):
    cfg = tiny_groupvit_cfg(toy_captions_root, tmp_path)
    model = MODELS.build(cfg.model)
    with pytest.raises(TypeError, match='ZeroShotGroupHead'):
        set_zero_shot_classes(model, ('a', 'b'))


def test_classes_reach_the_head_through_a_test_time_augmentation_model(
    tiny_segmentor,
):
    # tools/test.py --tta hands the hooks mmseg's SegTTAModel around the
    # segmentor (not an MMEngine model wrapper)
    from mmseg.models import SegTTAModel

    tta = SegTTAModel(module=tiny_segmentor)
    head = set_zero_shot_classes(tta, ('background', 'disc', 'square'))
    assert head is tiny_segmentor.decode_head
    assert head.class_names == ('background', 'disc', 'square')
    assert tiny_segmentor.num_classes == 3


def test_class_lists_of_the_one_image_tools_are_checked():
    assert parse_class_names(' cat, dog ,hot dog') == ['cat', 'dog', 'hot dog']
    for bad, match in (
        ('a,,b', 'empty'),
        ('', 'no class names'),
        (' ', 'no class names'),
        ('a,b,a', 'a'),
    ):
        with pytest.raises(ValueError, match=match):
            parse_class_names(bad)
