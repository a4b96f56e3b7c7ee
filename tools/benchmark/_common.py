"""Helpers shared by the benchmark scripts of ``tools/benchmark/``.

Not a script: ``train_speed.py``, ``peak_memory.py``,
``zero_shot_latency.py`` and ``data_loading.py`` import it (their folder
is first on ``sys.path`` when they run). Importing it puts the repository
root on ``sys.path`` and imports :mod:`mixreorg_mmseg` (registration,
mmcv-lite compat).
"""

from __future__ import annotations

import os.path as osp
import shlex
import sys
import time
from collections.abc import Callable, Sequence

import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)
import mixreorg_mmseg  # noqa: E402,F401  (registers, mmcv-lite compat)

#: The full-size pre-training configs, by short name.
TRAIN_CONFIGS = {
    'groupvit': 'configs/groupvit_vit-s_cc12m.py',
    'mixreorg': 'configs/mixreorg_vit-s_cc12m.py',
}
#: Their tiny quickstart counterparts (``--tiny``: seconds on a CPU).
TINY_TRAIN_CONFIGS = {
    'groupvit': 'configs/quickstart/groupvit_tiny_toy-captions-64x64.py',
    'mixreorg': 'configs/quickstart/mixreorg_tiny_toy-captions-64x64.py',
}


def repo_path(path: str) -> str:
    """``path`` as given if it exists or is absolute, else under the
    repository root (so the scripts run from any folder)."""
    if osp.isabs(path) or osp.exists(path):
        return path
    return osp.join(REPO_ROOT, path)


def register_modules() -> None:
    """MMSeg's registries as default scope, as the Runner sets them."""
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=True)


def default_device() -> str:
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def synchronize(device: str | torch.device | None) -> None:
    """Wait for the device's queued work (timing on GPUs)."""
    if device is not None and torch.device(device).type == 'cuda':
        torch.cuda.synchronize(device)


def bf16_autocast(device: str | torch.device, enabled: bool):
    """bf16 autocast on ``device`` (a no-op context when not enabled)."""
    return torch.autocast(
        torch.device(device).type, dtype=torch.bfloat16, enabled=enabled
    )


def toy_captions(n: int, seed: int = 0) -> list[str]:
    from mixreorg_mmseg.datasets.toy_image_captions import (
        generate_toy_image_captions,
    )

    return [c for _, _, c in generate_toy_image_captions(n, 32, seed, 'train')]


def time_steps(
    step: Callable[[], object],
    steps: int,
    warmup: int = 1,
    device: str | torch.device | None = None,
) -> float:
    """Median seconds of ``steps`` calls after ``warmup`` untimed calls
    (the device is synchronised around each timed call)."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        synchronize(device)
        start = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def train_step(
    config: str,
    batch: int,
    bf16: bool = False,
    img_size: int | None = None,
    device: str = 'cpu',
    seed: int = 0,
    text_in_model: bool = False,
) -> tuple[torch.nn.Module, Callable[[], None]]:
    """The config's model in train mode and a function running one
    optimizer step (forward, backward, AdamW) on a fixed batch of random
    ``img_size`` images (None: the backbone's ``img_size``) with captions
    of the toy world, under bf16 autocast when ``bf16``.

    The captions reach the model as training gives them: tokenized with
    their noun prompts by ``TokenizeCaption`` (with the model's text
    settings), before the timing, as the dataloader workers do; with
    ``text_in_model`` as strings, so that the step includes the model's
    own tokenization and noun extraction on the main process."""
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample

    cfg = Config.fromfile(config)
    if img_size is not None and img_size != cfg.model.backbone.img_size:
        # the position embeddings are made for the training size
        cfg.model.backbone.img_size = img_size
    size = cfg.model.backbone.img_size
    height, width = (size, size) if isinstance(size, int) else size
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    images = torch.randn(batch, 3, height, width, device=device)
    metas = [dict(caption=c) for c in toy_captions(batch)]
    if not text_in_model:
        tokenize = caption_tokenizer(cfg.model)
        metas = [tokenize(meta) for meta in metas]
    samples = [SegDataSample(metainfo=meta) for meta in metas]

    def step():
        with bf16_autocast(device, bf16):
            losses = model(images, samples, mode='loss')
        loss = sum(v for k, v in losses.items() if k.startswith('loss'))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return model, step


def caption_tokenizer(model_cfg):
    """``TokenizeCaption`` with a segmentor config's text settings (its
    text encoder's context, its ``noun_prompts`` when it has the
    multi-label loss)."""
    from mmseg.registry import TRANSFORMS

    step = dict(
        type='TokenizeCaption',
        context_length=model_cfg.text_encoder.get('context_length', 77),
        max_nouns=None,
    )
    if model_cfg.get('multi_label_loss') is not None:
        nouns = dict(model_cfg.noun_prompts)
        nouns.pop('seed', None)
        step.update(nouns)
        step.setdefault('max_nouns', 3)
    return TRANSFORMS.build(step)


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A markdown table (cells formatted with ``str``)."""
    lines = [
        '| ' + ' | '.join(header) + ' |',
        '|' + '---|' * len(header),
    ]
    for row in rows:
        lines.append('| ' + ' | '.join(str(c) for c in row) + ' |')
    return '\n'.join(lines)


def ratio(value: float, base: float | None) -> str:
    """``'1.23x'``, or ``'n/a'`` without a base."""
    return f'{value / base:.2f}x' if base else 'n/a'


def command_line(script: str, argv: Sequence[str] | None) -> str:
    """The command that runs ``script`` with ``argv`` (None: this
    process's arguments), the script relative to the repository root."""
    argv = sys.argv[1:] if argv is None else list(argv)
    path = osp.abspath(script)
    if path.startswith(REPO_ROOT + osp.sep):
        path = osp.relpath(path, REPO_ROOT)
    return 'python ' + shlex.join([path, *argv])


def report(
    text: str,
    out: str | None,
    script: str,
    argv: Sequence[str] | None,
) -> None:
    """Print ``text`` (a caption and a markdown table); with ``out``,
    also write it to that file under the command that produced it."""
    print('\n' + text)
    if out:
        with open(out, 'w', encoding='utf-8') as f:
            f.write(f'```bash\n{command_line(script, argv)}\n```\n\n')
            f.write(text.rstrip('\n') + '\n')
        print(f'\nwritten to {out}')


def add_out_argument(parser) -> None:
    parser.add_argument(
        '--out',
        metavar='FILE',
        help='also write the table (under the command line) to FILE',
    )
