"""Peak memory of a training step of the full-size models, side by side.

For each model (GroupViT, MixReorg) and precision (fp32, and bf16 autocast
with ``--bf16``), a fresh Python process builds the model (with AdamW and
a fixed batch of random images with captions of the toy world, as
``train_speed.py`` times it), runs ``--warmup-steps`` optimizer steps
(forward, backward, AdamW: the first one allocates AdamW's state), then
one measured step. Reported, in MiB:

* build: the memory the built model, optimizer and batch take;
* step peak: the peak of the measured step above the built model (AdamW
  state, gradients, activations; on CPU also the buffers the runtime sets
  up in the first step, a few tens of MiB);
* build + step: the process's peak above what it held before the build;

and the ratios to the first model (MixReorg / GroupViT). On CUDA the
numbers are ``torch.cuda.memory_allocated`` / ``max_memory_allocated``
(tensors only, not the caching allocator's reserve or the CUDA context).
On CPU they are the resident set size of the process (``VmRSS``) and its
high-water mark (``VmHWM``, reset before the measured step through
``/proc/self/clear_refs``; where that is not possible, ``ru_maxrss``:
the step peak is then the peak of all steps, the warm-up ones included).
RSS includes what the allocator keeps after freeing, so CPU numbers are
an upper bound of what the tensors need.

    python tools/benchmark/peak_memory.py --bf16 [--models groupvit
        mixreorg] [--batch-size 16] [--img-size 224] [--device cpu|cuda]
        [--out FILE]
    python tools/benchmark/peak_memory.py --tiny   # quickstart configs

``--in-process`` measures all rows in the calling process instead: exact
on CUDA (the baselines are taken per row), a smoke test on CPU (memory
an earlier row freed is reused by later rows, which then look smaller).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys

import torch
from _common import (
    TINY_TRAIN_CONFIGS,
    TRAIN_CONFIGS,
    add_out_argument,
    count_params,
    default_device,
    markdown_table,
    ratio,
    register_modules,
    repo_path,
    report,
    synchronize,
    train_step,
)

MIB = 1024**2
#: Marks the result line a measuring process prints.
RESULT = 'PEAK_MEMORY_RESULT '


def _proc_status(key: str) -> int | None:
    """``key`` of ``/proc/self/status`` in bytes (None if unreadable)."""
    try:
        with open('/proc/self/status', encoding='ascii') as f:
            for line in f:
                if line.startswith(key + ':'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _maxrss() -> int:
    """``ru_maxrss`` in bytes (kB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == 'darwin' else peak * 1024


class CpuMemory:
    """Resident set size and its high-water mark of this process."""

    def __init__(self) -> None:
        self.proc = _proc_status('VmRSS') is not None
        self.resettable = self.proc and self._clear_refs()
        self.method = (
            'RSS (VmRSS, VmHWM reset before the measured step)'
            if self.resettable
            else 'RSS (ru_maxrss: peak of all steps)'
        )

    @staticmethod
    def _clear_refs() -> bool:
        """Reset ``VmHWM`` to the current RSS (Linux >= 4.0)."""
        try:
            with open('/proc/self/clear_refs', 'w', encoding='ascii') as f:
                f.write('5')
            return True
        except OSError:
            return False

    def current(self) -> int:
        return _proc_status('VmRSS') if self.proc else _maxrss()

    def peak(self) -> int:
        return _proc_status('VmHWM') if self.proc else _maxrss()

    def reset_peak(self) -> None:
        if self.resettable:
            self._clear_refs()


class CudaMemory:
    """Allocated tensor memory on one CUDA device and its peak."""

    method = 'torch.cuda.max_memory_allocated'

    def __init__(self, device: str) -> None:
        self.device = torch.device(device)

    def current(self) -> int:
        synchronize(self.device)
        return torch.cuda.memory_allocated(self.device)

    def peak(self) -> int:
        synchronize(self.device)
        return torch.cuda.max_memory_allocated(self.device)

    def reset_peak(self) -> None:
        synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)


def measure(
    config: str,
    batch: int,
    img_size: int | None,
    bf16: bool,
    device: str,
    warmup_steps: int = 1,
) -> dict:
    """Build memory and step peak (bytes) of one config, in this process
    (a fresh one: what ran before shows in the CPU peaks)."""
    register_modules()
    memory = (
        CudaMemory(device)
        if torch.device(device).type == 'cuda'
        else CpuMemory()
    )
    start = memory.current()
    model, step = train_step(config, batch, bf16, img_size, device)
    built = memory.current()
    for _ in range(warmup_steps):
        step()
    memory.reset_peak()
    step()
    peak = memory.peak()
    return dict(
        params=count_params(model),
        img_size=model.backbone.img_size,
        build=built - start,
        step_peak=peak - built,
        total=peak - start,
        method=memory.method,
    )


def measure_in_subprocess(
    config: str, args: argparse.Namespace, bf16: bool
) -> dict:
    """:func:`measure` in a fresh interpreter; its result."""
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        '--measure',
        config,
        '--batch-size',
        str(args.batch_size),
        '--device',
        args.device,
        '--warmup-steps',
        str(args.warmup_steps),
    ]
    if args.img_size is not None:
        cmd += ['--img-size', str(args.img_size)]
    if bf16:
        cmd.append('--bf16')
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT) :])
    raise RuntimeError(
        f'measuring {config} failed (exit code {proc.returncode}):\n'
        f'{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}'
    )


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--models',
        nargs='+',
        default=['groupvit', 'mixreorg'],
        help='groupvit, mixreorg (the cc12m configs, or the quickstart '
        'ones with --tiny) or config paths; ratios are to the first',
    )
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument(
        '--img-size',
        type=int,
        help="image side (default: the backbone's img_size, 224; 64 with "
        '--tiny)',
    )
    parser.add_argument(
        '--bf16',
        action='store_true',
        help='also measure under bf16 autocast (after fp32)',
    )
    parser.add_argument('--device', default=default_device())
    parser.add_argument(
        '--warmup-steps',
        type=int,
        default=1,
        help='steps before the measured one (the first allocates the '
        'AdamW state)',
    )
    parser.add_argument(
        '--tiny',
        action='store_true',
        help='the tiny quickstart configs (a smoke test in seconds)',
    )
    parser.add_argument(
        '--in-process',
        action='store_true',
        help='measure every model in this process, not each in a fresh '
        'one: exact on CUDA, but on CPU the memory earlier runs freed is '
        'reused by later ones (for smoke tests)',
    )
    parser.add_argument(
        '--measure', metavar='CONFIG', help=argparse.SUPPRESS
    )  # internal: measure CONFIG in this process, print the result
    add_out_argument(parser)
    return parser.parse_args(argv)


def resolve_config(model: str, tiny: bool) -> str:
    configs = TINY_TRAIN_CONFIGS if tiny else TRAIN_CONFIGS
    return repo_path(configs.get(model, model))


def main(argv=None) -> list[dict]:
    """Measure, print the table (and write it with ``--out``); returns
    the rows as dicts."""
    args = parse_args(argv)
    if args.measure:
        result = measure(
            args.measure,
            args.batch_size,
            args.img_size,
            args.bf16,
            args.device,
            args.warmup_steps,
        )
        print(RESULT + json.dumps(result), flush=True)
        return [result]

    rows = []
    for bf16 in (False, True) if args.bf16 else (False,):
        for model in args.models:
            config = resolve_config(model, args.tiny)
            if args.in_process:
                result = measure(
                    config,
                    args.batch_size,
                    args.img_size,
                    bf16,
                    args.device,
                    args.warmup_steps,
                )
                gc.collect()
            else:
                result = measure_in_subprocess(config, args, bf16)
            result.update(model=model, precision='bf16' if bf16 else 'fp32')
            rows.append(result)
            print(
                f'{model} {result["precision"]}: build '
                f'{result["build"] / MIB:.1f} MiB, step peak '
                f'{result["step_peak"] / MIB:.1f} MiB',
                flush=True,
            )

    first = args.models[0]
    table = []
    for row in rows:
        base = next(
            r
            for r in rows
            if r['model'] == first and r['precision'] == row['precision']
        )
        table.append(
            (
                row['model'],
                row['precision'],
                f'{row["params"] / 1e6:.2f}M',
                f'{row["build"] / MIB:.1f}',
                f'{row["step_peak"] / MIB:.1f}',
                f'{row["total"] / MIB:.1f}',
                ratio(row['step_peak'], base['step_peak']),
                ratio(row['total'], base['total']),
            )
        )
    header = (
        'model',
        'precision',
        'params',
        'build (MiB)',
        'step peak (MiB)',
        'build + step (MiB)',
        f'step peak vs {first}',
        f'build + step vs {first}',
    )
    size = 'x'.join(str(v) for v in rows[0]['img_size'])
    caption = (
        f'training step memory ({"tiny quickstart" if args.tiny else "full"}'
        f' configs), batch {args.batch_size} at {size}, '
        f'{args.warmup_steps} warm-up step(s), device {args.device}, '
        f'{rows[0]["method"]}, '
        f'{"one process" if args.in_process else "a process per row"}, '
        f'torch {torch.__version__}\n'
    )
    report(
        caption + '\n' + markdown_table(header, table),
        args.out,
        __file__,
        argv,
    )
    return rows


if __name__ == '__main__':
    main()
