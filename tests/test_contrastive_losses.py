"""Image-text and multi-label contrastive losses, alone and under DDP."""

import math
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from mixreorg_mmseg.models.losses import (
    ImageTextContrastiveLoss,
    MultiLabelContrastiveLoss,
)
from mixreorg_mmseg.utils.safe_checkpoint import load_weights

SCALE = 10.0


def random_batch(batch=6, num_prompts=3, channels=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, channels)
    return dict(
        image=torch.randn(shape, generator=gen, dtype=torch.float64),
        text=torch.randn(shape, generator=gen, dtype=torch.float64),
        prompts=torch.randn(
            (batch, num_prompts, channels), generator=gen, dtype=torch.float64
        ),
    )


def _log_softmax_at(scores, index):
    return scores[index] - math.log(sum(math.exp(s) for s in scores))


def _dot(a, b):
    return float(F.normalize(a, dim=-1) @ F.normalize(b, dim=-1))


def clip_reference_rows(image, text, scale):
    """Per-row losses of both sides, with explicit sums over the batch."""
    n = len(image)
    image_rows, text_rows = [], []
    for b in range(n):
        scores = [scale * _dot(image[b], text[j]) for j in range(n)]
        image_rows.append(-_log_softmax_at(scores, b))
        scores = [scale * _dot(text[b], image[j]) for j in range(n)]
        text_rows.append(-_log_softmax_at(scores, b))
    return image_rows, text_rows


def multi_label_reference_rows(image, prompts, valid, scale):
    """Image rows ``{b: loss}`` (images with a valid prompt) and text rows
    ``{(b, k): loss}`` (valid prompts), with explicit sums."""
    columns = [(b, k) for b, k in valid.nonzero().tolist()]
    image_rows, text_rows = {}, {}
    for b in range(len(image)):
        own = [i for i, (owner, _) in enumerate(columns) if owner == b]
        if not own:
            continue
        scores = [scale * _dot(image[b], prompts[c]) for c in columns]
        image_rows[b] = -sum(_log_softmax_at(scores, i) for i in own) / len(
            own
        )
    for b, k in columns:
        scores = [scale * _dot(prompts[b, k], img) for img in image]
        text_rows[(b, k)] = -_log_softmax_at(scores, b)
    return image_rows, text_rows


def _mean(values):
    values = list(values)
    return sum(values) / len(values)


# --------------------------------------------------------------------------
# single process
# --------------------------------------------------------------------------


def test_contrastive_loss_matches_hand_computed_reference():
    data = random_batch()
    loss = ImageTextContrastiveLoss(loss_weight=2.0)(
        data['image'], data['text'], torch.tensor(SCALE)
    )
    image_rows, text_rows = clip_reference_rows(
        data['image'], data['text'], SCALE
    )
    expected = 2.0 * (_mean(image_rows) + _mean(text_rows)) / 2
    assert loss.dim() == 0
    assert loss.item() == pytest.approx(expected, rel=1e-10)


def test_contrastive_loss_normalises_its_inputs():
    data = random_batch()
    loss_fn = ImageTextContrastiveLoss()
    scaled = loss_fn(3 * data['image'], 0.5 * data['text'], SCALE)
    assert scaled.item() == pytest.approx(
        loss_fn(data['image'], data['text'], SCALE).item(), rel=1e-12
    )


def test_contrastive_loss_gradient_flows_to_embeddings_and_scale():
    data = random_batch()
    image = data['image'].requires_grad_()
    text = data['text'].requires_grad_()
    scale = torch.tensor(SCALE, dtype=torch.float64, requires_grad=True)
    ImageTextContrastiveLoss()(image, text, scale).backward()
    for grad in (image.grad, text.grad, scale.grad):
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_aligned_pairs_give_low_loss_and_shuffled_pairs_high_loss():
    embeds = torch.eye(8)[:6]
    loss_fn = ImageTextContrastiveLoss()
    assert loss_fn(embeds, embeds, 100.0).item() < 1e-3
    assert loss_fn(embeds, embeds.roll(1, 0), 100.0).item() > 50


def test_multi_label_loss_matches_hand_computed_reference():
    data = random_batch()
    valid = torch.tensor(
        [[1, 1, 0], [1, 0, 0], [0, 0, 0], [1, 1, 1], [0, 1, 1], [1, 0, 0]]
    ).bool()
    loss = MultiLabelContrastiveLoss(loss_weight=0.5)(
        data['image'], data['prompts'], valid, torch.tensor(SCALE)
    )
    image_rows, text_rows = multi_label_reference_rows(
        data['image'], data['prompts'], valid, SCALE
    )
    assert sorted(image_rows) == [0, 1, 3, 4, 5]
    expected = (
        0.5 * (_mean(image_rows.values()) + _mean(text_rows.values())) / 2
    )
    assert loss.item() == pytest.approx(expected, rel=1e-10)


def test_multi_label_loss_ignores_padding_prompts():
    data = random_batch()
    valid = torch.rand(6, 3, generator=torch.Generator().manual_seed(1)) > 0.4
    prompts = data['prompts'].clone().requires_grad_()
    loss_fn = MultiLabelContrastiveLoss()
    loss = loss_fn(data['image'], prompts, valid, SCALE)
    loss.backward()
    assert prompts.grad[~valid].abs().max() == 0
    assert prompts.grad[valid].abs().min() > 0
    changed = data['prompts'].clone()
    changed[~valid] = torch.randn_like(changed[~valid])
    other = loss_fn(data['image'], changed, valid, SCALE)
    assert other.item() == pytest.approx(loss.item(), rel=1e-12)


def test_multi_label_loss_with_one_valid_prompt_each_is_clip_loss():
    data = random_batch()
    prompts = data['text'][:, None]
    valid = torch.ones(6, 1, dtype=torch.bool)
    multi = MultiLabelContrastiveLoss()(data['image'], prompts, valid, SCALE)
    plain = ImageTextContrastiveLoss()(data['image'], data['text'], SCALE)
    torch.testing.assert_close(multi, plain, rtol=1e-12, atol=1e-12)


def test_multi_label_loss_aligned_prompts_give_low_loss():
    embeds = torch.eye(8)[:4]
    prompts = torch.stack([embeds, embeds], dim=1)  # two copies, both own
    valid = torch.ones(4, 2, dtype=torch.bool)
    loss = MultiLabelContrastiveLoss()(embeds, prompts, valid, 100.0)
    # image side: the two own prompts share the mass, log 2 is its minimum
    assert loss.item() == pytest.approx(math.log(2) / 2, abs=1e-3)


def test_multi_label_loss_without_valid_prompts_is_zero_with_graph():
    data = random_batch()
    image = data['image'].requires_grad_()
    valid = torch.zeros(6, 3, dtype=torch.bool)
    loss = MultiLabelContrastiveLoss()(image, data['prompts'], valid, SCALE)
    assert loss.item() == 0
    loss.backward()
    assert image.grad.abs().max() == 0


def test_segment_max_pooling_with_one_segment_is_the_image_loss():
    data = random_batch()
    valid = torch.ones(6, 3, dtype=torch.bool)
    valid[1, 2] = valid[4, 0] = False
    image = MultiLabelContrastiveLoss()(
        data['image'], data['prompts'], valid, SCALE
    )
    pooled = MultiLabelContrastiveLoss(pooling='max')(
        data['image'][:, None], data['prompts'], valid, SCALE
    )
    torch.testing.assert_close(pooled, image)


def test_segment_max_pooling_scores_each_prompt_with_the_best_segment():
    # image b's segments: a random one and, for prompt k of image b, the
    # prompt itself: the best segment of every own prompt is a perfect match
    data = random_batch(num_prompts=2)
    valid = torch.ones(6, 2, dtype=torch.bool)
    prompts = data['prompts']
    segments = torch.cat([data['image'][:, None], prompts], dim=1)
    loss_fn = MultiLabelContrastiveLoss(pooling='max')
    loss = loss_fn(segments, prompts, valid, SCALE)
    # by hand: score(b, q) = max over b's segments of the cosine
    cos = torch.einsum(
        'bsc,qc->bsq',
        F.normalize(segments, dim=-1),
        F.normalize(prompts.reshape(-1, prompts.shape[-1]), dim=-1),
    ).amax(dim=1)
    owner = torch.arange(6).repeat_interleave(2)
    targets = (owner[None] == torch.arange(6)[:, None]).double() / 2
    image_side = -(targets * (SCALE * cos).log_softmax(-1)).sum(-1).mean()
    text_side = F.cross_entropy(SCALE * cos.t(), owner)
    torch.testing.assert_close(loss, (image_side + text_side) / 2)


def test_segment_max_pooling_leaves_out_segments_without_patches():
    data = random_batch(num_prompts=2)
    valid = torch.ones(6, 2, dtype=torch.bool)
    segments = torch.stack([data['image'], data['text']], dim=1)
    loss_fn = MultiLabelContrastiveLoss(pooling='max')
    first_only = torch.tensor([[True, False]] * 6)
    with_mask = loss_fn(
        segments, data['prompts'], valid, SCALE, segment_valid=first_only
    )
    alone = loss_fn(segments[:, :1], data['prompts'], valid, SCALE)
    torch.testing.assert_close(with_mask, alone)
    # a masked-out segment that matches every own prompt changes nothing
    segments[:, 1] = data['prompts'][:, 0]
    again = loss_fn(
        segments, data['prompts'], valid, SCALE, segment_valid=first_only
    )
    torch.testing.assert_close(again, with_mask)


def test_segment_pooling_checks_its_inputs():
    data = random_batch()
    valid = torch.ones(6, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match=r'\[B, S, C\]'):
        MultiLabelContrastiveLoss(pooling='max')(
            data['image'], data['prompts'], valid, SCALE
        )
    with pytest.raises(ValueError, match='segment_valid'):
        MultiLabelContrastiveLoss(pooling='max')(
            data['image'][:, None],
            data['prompts'],
            valid,
            SCALE,
            segment_valid=torch.ones(6, 2, dtype=torch.bool),
        )
    with pytest.raises(ValueError, match='pooling'):
        MultiLabelContrastiveLoss(pooling='mean')


def test_bad_loss_inputs_raise_naming_the_argument():
    data = random_batch()
    clip, multi = ImageTextContrastiveLoss(), MultiLabelContrastiveLoss()
    valid = torch.ones(6, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match='text_embeds'):
        clip(data['image'], data['text'][:5], SCALE)
    with pytest.raises(ValueError, match='logit_scale'):
        clip(data['image'], data['text'], torch.ones(2))
    with pytest.raises(ValueError, match='prompt_embeds'):
        multi(data['image'], data['prompts'][:5], valid, SCALE)
    with pytest.raises(TypeError, match='valid'):
        multi(data['image'], data['prompts'], valid.long(), SCALE)
    with pytest.raises(ValueError, match='valid'):
        multi(data['image'], data['prompts'], valid[:, :2], SCALE)
    with pytest.raises(ValueError, match='loss_name'):
        MultiLabelContrastiveLoss(loss_name='multi_label')
    assert clip.loss_name == 'loss_contrastive'
    assert multi.loss_name == 'loss_multi_label'


# --------------------------------------------------------------------------
# two processes (gloo) against one process on the global batch
# --------------------------------------------------------------------------

WORLD_SIZE = 2
LOCAL_BATCH = 3
#: valid masks of the global batch of 6: uneven counts between the ranks
#: (3 and 6 prompts), and a rank with none at all
VALID_MASKS = {
    'uneven': [
        [1, 1, 0],
        [1, 0, 0],
        [0, 0, 0],
        [1, 1, 1],
        [1, 0, 1],
        [1, 0, 0],
    ],
    'rank1_empty': [
        [1, 0, 0],
        [1, 1, 0],
        [0, 1, 1],
        [0, 0, 0],
        [0, 0, 0],
        [0, 0, 0],
    ],
}


def _losses_and_grads(data, rows):
    """Both losses on ``rows`` of the batch, with gradients w.r.t. the
    embeddings of those rows and the logit scales."""
    out = {}
    image = data['image'][rows].clone().requires_grad_()
    text = data['text'][rows].clone().requires_grad_()
    scale = torch.tensor(SCALE, dtype=torch.float64, requires_grad=True)
    loss = ImageTextContrastiveLoss()(image, text, scale)
    loss.backward()
    out['clip'] = dict(
        loss=loss.detach(), image=image.grad, text=text.grad, scale=scale.grad
    )
    for name, mask in VALID_MASKS.items():
        image = data['image'][rows].clone().requires_grad_()
        prompts = data['prompts'][rows].clone().requires_grad_()
        valid = torch.tensor(mask).bool()[rows]
        scale = torch.tensor(SCALE, dtype=torch.float64, requires_grad=True)
        loss = MultiLabelContrastiveLoss()(image, prompts, valid, scale)
        loss.backward()
        out[name] = dict(
            loss=loss.detach(),
            image=image.grad,
            prompts=prompts.grad,
            scale=scale.grad,
        )
    return out


def _ddp_worker(rank, port, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group(
        'gloo',
        init_method=f'tcp://127.0.0.1:{port}',
        rank=rank,
        world_size=WORLD_SIZE,
    )
    try:
        rows = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        out = _losses_and_grads(random_batch(), rows)
        torch.save(out, os.path.join(out_dir, f'rank{rank}.pt'))
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_ddp_losses_and_gradients_equal_global_batch(tmp_path):
    """With local losses and a gathered backward, rank r's loss L_r
    satisfies mean_r L_r = L (the single-process loss of the global batch),
    and the gradient reaching rank r's embeddings is d(sum_r' L_r')/d e_r =
    W dL/d e_r; DDP's average over W ranks then gives dL/dtheta. The
    logit scale is replicated, so its gradient is DDP's average."""
    mp.spawn(
        _ddp_worker,
        args=(_free_port(), str(tmp_path)),
        nprocs=WORLD_SIZE,
        join=True,
    )
    ranks = [load_weights(tmp_path / f'rank{r}.pt') for r in range(WORLD_SIZE)]
    data = random_batch()
    single = _losses_and_grads(data, slice(None))
    for name, expected in single.items():
        per_rank = [out[name] for out in ranks]
        mean_loss = sum(r['loss'] for r in per_rank) / WORLD_SIZE
        torch.testing.assert_close(mean_loss, expected['loss'])
        mean_scale = sum(r['scale'] for r in per_rank) / WORLD_SIZE
        torch.testing.assert_close(mean_scale, expected['scale'])
        for key in expected.keys() - {'loss', 'scale'}:
            torch.testing.assert_close(
                torch.cat([r[key] for r in per_rank]),
                WORLD_SIZE * expected[key],
                msg=f'{name}: gradient of {key}',
            )

    # each rank's own loss is its rows' share of the global-batch loss
    image_rows, text_rows = clip_reference_rows(
        data['image'], data['text'], SCALE
    )
    for rank, out in enumerate(ranks):
        rows = range(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        expected = (
            _mean(image_rows[b] for b in rows)
            + _mean(text_rows[b] for b in rows)
        ) / 2
        assert out['clip']['loss'].item() == pytest.approx(expected, rel=1e-9)
    valid = torch.tensor(VALID_MASKS['uneven']).bool()
    image_rows, text_rows = multi_label_reference_rows(
        data['image'], data['prompts'], valid, SCALE
    )
    for rank, out in enumerate(ranks):
        rows = range(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        image_sum = sum(v for b, v in image_rows.items() if b in rows)
        text_sum = sum(v for (b, _), v in text_rows.items() if b in rows)
        expected = (
            WORLD_SIZE
            * (image_sum / len(image_rows) + text_sum / len(text_rows))
            / 2
        )
        loss = out['uneven']['loss'].item()
        assert loss == pytest.approx(expected, rel=1e-9)
