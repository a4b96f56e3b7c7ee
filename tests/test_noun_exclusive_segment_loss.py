"""Each noun's best segment must prefer it to the caption's other nouns."""

import math

import pytest
import torch

from mixreorg_mmseg.models.losses import NounExclusiveSegmentLoss

# three orthogonal directions: two nouns and a background
DISC, SQUARE, BG = torch.eye(3)


def test_separate_segments_cost_less_than_a_blended_one():
    loss = NounExclusiveSegmentLoss(loss_weight=1.0)
    prompts = torch.stack([DISC, SQUARE])[None]  # [1, 2, 3]
    valid = torch.ones(1, 2, dtype=torch.bool)
    separate = torch.stack([DISC, SQUARE, BG])[None]
    blended = torch.stack([DISC + SQUARE, DISC + SQUARE, BG])[None]
    scale = 10.0
    apart = loss(separate, prompts, valid, scale).item()
    # each best segment scores its own noun at 10, the other at 0
    assert apart == pytest.approx(math.log1p(math.exp(-10.0)), abs=1e-6)
    # a segment like both nouns cannot tell them apart: log 2
    assert loss(blended, prompts, valid, scale).item() == pytest.approx(
        math.log(2.0), rel=1e-4
    )


def test_images_with_one_noun_and_padding_take_no_part():
    loss = NounExclusiveSegmentLoss(loss_weight=2.0)
    segments = torch.stack([DISC + SQUARE, BG])[None].repeat(2, 1, 1)
    prompts = torch.stack([DISC, SQUARE])[None].repeat(2, 1, 1)
    # image 0: one noun (nothing to tell apart); image 1: both
    valid = torch.tensor([[True, False], [True, True]])
    value = loss(segments, prompts, valid, 10.0)
    assert value.item() == pytest.approx(2.0 * math.log(2.0), rel=1e-4)
    none = loss(segments, prompts, valid & False, 10.0)
    assert none.item() == 0.0


def test_segments_without_patches_are_not_chosen():
    loss = NounExclusiveSegmentLoss(loss_weight=1.0)
    prompts = torch.stack([DISC, SQUARE])[None]
    valid = torch.ones(1, 2, dtype=torch.bool)
    # the perfect segments own no patch: only the blended one counts
    segments = torch.stack([DISC, SQUARE, DISC + SQUARE])[None]
    owning = torch.tensor([[False, False, True]])
    value = loss(segments, prompts, valid, 10.0, segment_valid=owning)
    assert value.item() == pytest.approx(math.log(2.0), rel=1e-4)


def test_descent_separates_the_nouns_segments():
    torch.manual_seed(0)
    prompts = torch.stack([DISC, SQUARE])[None]
    valid = torch.ones(1, 2, dtype=torch.bool)
    segments = (
        torch.stack([DISC + SQUARE, DISC + 0.9 * SQUARE])[None]
        + 0.01 * torch.randn(1, 2, 3)
    ).requires_grad_(True)
    loss = NounExclusiveSegmentLoss(loss_weight=1.0)
    first = loss(segments, prompts, valid, 10.0).item()
    optimizer = torch.optim.Adam([segments], lr=0.05)
    for _ in range(100):
        value = loss(segments, prompts, valid, 10.0)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
    assert value.item() < 0.1 * first
    scores = (
        torch.nn.functional.normalize(segments[0], dim=-1)
        @ torch.stack([DISC, SQUARE]).t()
    )
    # each noun now has its own segment
    assert set(scores.argmax(dim=0).tolist()) == {0, 1}


def test_bad_shapes_are_named():
    loss = NounExclusiveSegmentLoss()
    with pytest.raises(ValueError, match='valid'):
        loss(
            torch.zeros(1, 2, 3),
            torch.zeros(1, 2, 3),
            torch.ones(1, 3).bool(),
            1.0,
        )
    with pytest.raises(ValueError, match='prompt_embeds'):
        loss(
            torch.zeros(1, 2, 3),
            torch.zeros(1, 2, 4),
            torch.ones(1, 2).bool(),
            1.0,
        )
