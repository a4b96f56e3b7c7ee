"""The text work of a training batch: in the model against in the workers.

Times, on this process's CPU threads (run with ``OMP_NUM_THREADS=1
taskset -c 0`` for one core), the CPU work that turns B captions into the
text encoder's input with the CC12M configs' settings (context 77, 3 noun
prompts a caption, CLIP's 80 ImageNet templates):

- in the model: ``TextSupervisedSegmentor.tokenize_captions`` on the
  batch (noun extraction, template draws, BPE), what every training step
  ran on the main process before the data pipeline tokenized;
- in the pipeline: ``TokenizeCaption`` once per sample, B times (the same
  work, spread over the dataloader workers);
- what is left on the main process with pipeline tokens: stacking the
  samples' tensors (``caption_tokens_of``, after its first-batch check).

The captions are made-up English sentences of 8-25 words in the style of
CC12M's alt-texts (seeded, nothing is downloaded).

    python tools/benchmark/caption_tokens.py [--batch 256] [--repeats 5]
        [--out FILE]
"""

from __future__ import annotations

import argparse
import random

import torch
from _common import (
    TRAIN_CONFIGS,
    add_out_argument,
    markdown_table,
    register_modules,
    repo_path,
    report,
    time_steps,
)

_SUBJECTS = (
    'woman man girl boy dog cat couple family chef child horse bird car '
    'house tree bridge building bicycle team player teacher student'.split()
)
_ADJECTIVES = (
    'young old happy smiling red blue wooden modern vintage beautiful '
    'small large busy quiet sunny colorful cozy'.split()
)
_ACTIONS = (
    'standing near|walking along|sitting on|looking at|playing with|'
    'holding|riding|running through|waiting for|reading beside'.split('|')
)
_OBJECTS = (
    'beach street table window garden river mountain kitchen park fence '
    'sofa lake forest road city market laptop book flowers coffee'.split()
)
_TAILS = (
    'in the morning|at sunset|on a summer day|during the holidays|'
    'with friends|in winter|under a cloudy sky|stock photo|'
    'vector illustration|for sale'.split('|')
)


def cc12m_like_captions(num: int, seed: int = 0) -> list[str]:
    """``num`` made-up alt-text captions, 8-25 words each."""
    rng = random.Random(seed)
    captions = []
    for _ in range(num):
        words = [
            'a',
            rng.choice(_ADJECTIVES),
            rng.choice(_SUBJECTS),
            rng.choice(_ACTIONS),
            'the',
            rng.choice(_ADJECTIVES),
            rng.choice(_OBJECTS),
        ]
        for _ in range(rng.randint(0, 3)):
            words += ['and', 'a', rng.choice(_OBJECTS)]
        words.append(rng.choice(_TAILS))
        captions.append(' '.join(words).capitalize() + '.')
    return captions


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch', type=int, default=256)
    parser.add_argument('--repeats', type=int, default=5)
    add_out_argument(parser)
    return parser.parse_args(argv)


def measure(batch: int, repeats: int) -> dict[str, float]:
    """Median seconds per batch of each of the three ways (see the module
    docstring)."""
    from mmengine.config import Config
    from mmseg.registry import MODELS, TRANSFORMS
    from mmseg.structures import SegDataSample

    cfg = Config.fromfile(repo_path(TRAIN_CONFIGS['groupvit']))
    model = MODELS.build(cfg.model)
    (step,) = [
        t
        for t in cfg.train_dataloader.dataset.pipeline
        if t['type'] == 'TokenizeCaption'
    ]
    transform = TRANSFORMS.build(step)
    captions = cc12m_like_captions(batch)
    torch.manual_seed(0)
    samples = [
        SegDataSample(metainfo=transform(dict(caption=c))) for c in captions
    ]
    model.caption_tokens_of(samples)  # the one-time check, not timed
    return {
        'in the model (main process)': time_steps(
            lambda: model.tokenize_captions(captions), repeats
        ),
        'in the pipeline (B samples, workers)': time_steps(
            lambda: [transform(dict(caption=c)) for c in captions], repeats
        ),
        'left on the main process with pipeline tokens': time_steps(
            lambda: model.caption_tokens_of(samples), repeats
        ),
    }


def main(argv=None):
    args = parse_args(argv)
    register_modules()
    seconds = measure(args.batch, args.repeats)
    rows = [
        [where, f'{s * 1e3:.3g}', f'{s / args.batch * 1e6:.3g}']
        for where, s in seconds.items()
    ]
    text = (
        f'Text work of one batch of {args.batch} captions '
        f'({torch.get_num_threads()} thread(s)), median of {args.repeats}\n\n'
        + markdown_table(['where', 'ms per batch', 'us per caption'], rows)
    )
    report(text, args.out, __file__, argv)


if __name__ == '__main__':
    main()
