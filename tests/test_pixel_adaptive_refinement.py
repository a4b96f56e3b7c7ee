"""Pixel-adaptive refinement of segment maps, alone and in the zero-shot
head."""

import pytest
import torch

from mixreorg_mmseg.models.decode_heads import (
    PixelAdaptiveRefinement,
    ZeroShotGroupHead,
)

from .test_zero_shot_head import CLASSES, METAS, FakeText, fake_feats, unit


def two_colour_image(edge, size=64):
    """``[1, 3, size, size]``: red left of column ``edge``, blue from it,
    with faint noise (so no neighbourhood is perfectly flat)."""
    g = torch.Generator().manual_seed(0)
    image = 0.02 * torch.randn(1, 3, size, size, generator=g)
    image[:, 0, :, :edge] += 1.0
    image[:, 2, :, edge:] += 1.0
    return image


def split_maps(edge, size=64):
    """``[1, 2, size, size]``: segment 0 left of column ``edge``, segment
    1 from it (one-hot)."""
    left = torch.zeros(1, 1, size, size)
    left[..., :edge] = 1.0
    return torch.cat([left, 1.0 - left], dim=1)


def test_a_segment_boundary_moves_to_the_colour_edge():
    # the maps put the boundary 8 px right of the edge, as a grid of 8 px
    # tokens may; every pixel of the blue side has 3 of 4 blue pixels in
    # segment 1, and red-blue weights are ~exp(-20), so averaging over the
    # blue side alone hands the strip to segment 1
    image, maps = two_colour_image(32), split_maps(40)
    refined = PixelAdaptiveRefinement()(image, maps)
    columns = torch.arange(64).expand(64, 64)
    assert torch.equal(refined.argmax(1)[0], (columns >= 32).long())
    # without the image's edges (one flat colour) the maps only blur
    flat = PixelAdaptiveRefinement()(torch.zeros_like(image), maps)
    assert flat.argmax(1)[0, :, 36].eq(0).all()


def test_weights_sum_to_one_and_constant_maps_stay_constant():
    refine = PixelAdaptiveRefinement(dilations=(1, 3), num_iter=4)
    image = torch.rand(
        2, 3, 20, 24, generator=torch.Generator().manual_seed(1)
    )
    weights = refine.weights(image)
    assert weights.shape == (2, 16, 20, 24)
    torch.testing.assert_close(weights.sum(1), torch.ones(2, 20, 24))
    maps = torch.rand(2, 5, 20, 24).softmax(1)
    out = refine(image, maps)
    assert out.shape == maps.shape and out.dtype == maps.dtype
    # a convex combination of distributions is one: the maps stay
    # distributions over the segments
    torch.testing.assert_close(out.sum(1), torch.ones(2, 20, 24))
    constant = torch.full((2, 5, 20, 24), 0.2)
    torch.testing.assert_close(refine(image, constant), constant)


@pytest.mark.parametrize(
    'kwargs, match',
    [
        (dict(dilations=()), 'dilations'),
        (dict(dilations=(1, 0)), 'dilations'),
        (dict(num_iter=0), 'num_iter'),
        (dict(sigma=0.0), 'sigma'),
    ],
)
def test_bad_settings_fail_naming_the_key(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PixelAdaptiveRefinement(**kwargs)


def test_maps_of_another_size_are_refused():
    with pytest.raises(ValueError, match='resize the maps'):
        PixelAdaptiveRefinement()(
            torch.rand(1, 3, 8, 8), torch.rand(1, 2, 4, 4)
        )


def test_the_head_refines_its_segments_by_the_input_image():
    # fake_feats: a 2 x 2 token grid on a 4 x 4 input; final segments 0
    # (cat), 1 (background: half dog, half bird) and 2 (bird) own the
    # top-left, top-right and bottom patches
    def feats():
        return fake_feats(
            [unit(1, 0, 0, 0), unit(0, 1, 1, 0), unit(0, 0, 1, 0)],
            unit(1, 1, 1, 0),
            FakeText(['cat', 'dog', 'bird']),
        )

    refine = dict(type='PixelAdaptiveRefinement', dilations=(1,), num_iter=3)
    head = ZeroShotGroupHead(
        class_names=CLASSES, bg_thresh=0.95, refine=refine
    )
    # the image: row 0 one colour, rows 1-3 another; the cat's patch
    # covers rows 0-1, so its row 1 joins the bird below
    image = torch.zeros(1, 3, 4, 4)
    image[:, :, 0] = 1.0
    with_image = feats()
    with_image['inputs'] = image
    pred = head.predict(with_image, METAS).argmax(1)[0]
    assert pred[0, :2].eq(1).all() and pred[1:].eq(3).all()
    plain = ZeroShotGroupHead(class_names=CLASSES, bg_thresh=0.95)
    assert plain.predict(feats(), METAS).argmax(1)[0, 1, 0] == 1
    with pytest.raises(KeyError, match="feats\\['inputs'\\]"):
        head.predict(feats(), METAS)
