"""Convert GroupViT weights (NVlabs release or transformers folder) to this
package's layout.

    python tools/model_converters/groupvit2mmseg.py SRC DST
        [--config configs/groupvit_vit-s_cc12m.py] [--allow-missing]

SRC is either

- a release file of NVlabs/GroupViT (``{'model': state_dict, ...}``),
  loaded weights-only (:mod:`mixreorg_mmseg.utils.groupvit_checkpoint`);
- a folder of Hugging Face transformers' ``GroupViTModel`` (a snapshot of
  ``nvidia/groupvit-gcc-yfcc``, or ``save_pretrained`` output):
  ``config.json`` and ``model.safetensors`` or ``pytorch_model.bin``
  (:mod:`mixreorg_mmseg.utils.hf_groupvit_checkpoint`; needs
  ``pip install 'mixreorg-mmseg[hf]'``). Its ``config.json`` must describe
  the model ``--config`` builds (sizes, heads, activations): every field
  that differs is named.

Every key is renamed explicitly and checked against the model that
``--config`` builds: unknown keys, keys the model lacks, keys left unfilled
and shapes that differ are errors naming the keys. ``--allow-missing``
converts anyway and lists what was dropped or left unfilled; it is what a
MixReorg config needs (``--config configs/mixreorg_vit-s_cc12m.py``), whose
training-only ``mixer.*`` weights a GroupViT checkpoint does not have.

DST is an MMEngine checkpoint (``{'meta': ..., 'state_dict': ...}``):

    python tools/test.py configs/zero_shot/groupvit_vit-s_voc12.py DST
    python tools/train.py CONFIG --cfg-options load_from=DST

The way back, to a transformers folder: tools/model_converters/
mmseg2hf_groupvit.py.
"""

import argparse
import os
import os.path as osp
import sys
import warnings

# the plugin first: mmseg on mmcv-lite, safe checkpoint I/O
import mixreorg_mmseg  # noqa: F401
from mixreorg_mmseg.utils.groupvit_checkpoint import (
    GroupViTConversionError,
    groupvit_to_mmengine_checkpoint,
    load_groupvit_checkpoint,
)
from mixreorg_mmseg.utils.hf_groupvit_checkpoint import (
    CONFIG_FILE,
    groupvit_hf_config,
    hf_folder_to_mmengine_checkpoint,
)
from mixreorg_mmseg.utils.safe_checkpoint import (
    UnsafeCheckpointError,
    safe_torch_save,
)

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIG = osp.join(REPO_ROOT, 'configs/groupvit_vit-s_cc12m.py')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        'src',
        help='NVlabs GroupViT checkpoint (.pth), or a transformers '
        f'GroupViTModel folder (with {CONFIG_FILE})',
    )
    parser.add_argument('dst', help='output MMEngine checkpoint')
    parser.add_argument(
        '--config',
        default=DEFAULT_CONFIG,
        help='config of the model the weights are for (default: the '
        'GroupViT ViT-S config); its state dict is the reference',
    )
    parser.add_argument(
        '--allow-missing',
        action='store_true',
        help='convert even if source keys are unknown or model keys stay '
        'unfilled (listed); needed for MixReorg configs (mixer.*)',
    )
    return parser.parse_args(argv)


def build_model(config: str):
    """The model ``config`` builds (random weights)."""
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(config)
    return MODELS.build(cfg.model)


def convert(args, model) -> tuple[dict, object]:
    """The MMEngine checkpoint and the conversion report of ``args.src``."""
    reference = {k: v.shape for k, v in model.state_dict().items()}
    strict = not args.allow_missing
    if osp.isdir(args.src):
        return hf_folder_to_mmengine_checkpoint(
            args.src,
            reference=reference,
            expected_config=groupvit_hf_config(model),
            strict=strict,
        )
    official = load_groupvit_checkpoint(args.src)
    return groupvit_to_mmengine_checkpoint(
        official, reference=reference, strict=strict, source=args.src
    )


def main(argv=None):
    args = parse_args(argv)
    if osp.isdir(args.src):
        if not osp.isfile(osp.join(args.src, CONFIG_FILE)):
            sys.exit(
                f'{args.src} is a folder without {CONFIG_FILE}: not a '
                'transformers GroupViT folder'
            )
    elif not osp.isfile(args.src):
        sys.exit(f'checkpoint not found: {args.src}')
    if not osp.isfile(args.config):
        sys.exit(f'config not found: {args.config}')
    if osp.abspath(args.src) == osp.abspath(args.dst):
        sys.exit('DST must differ from SRC')
    model = build_model(args.config)
    try:
        with warnings.catch_warnings():
            # what is dropped or left unfilled is printed below
            warnings.simplefilter('ignore', UserWarning)
            checkpoint, report = convert(args, model)
    except (GroupViTConversionError, UnsafeCheckpointError) as err:
        sys.exit(f'error: {err}')
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    safe_torch_save(checkpoint, args.dst)
    state = checkpoint['state_dict']
    params = sum(v.numel() for v in state.values()) / 1e6
    print(
        f'wrote {args.dst}: {len(state)} tensors ({params:.2f}M values) for '
        f'{osp.relpath(args.config)}'
    )
    for what, keys in (
        ('dropped unknown source keys', report.unknown),
        ('dropped keys the model lacks', report.unexpected),
        ('left unfilled (keep their initialisation)', report.missing),
    ):
        if keys:
            print(f'{what} ({len(keys)}): {", ".join(keys)}')


if __name__ == '__main__':
    main()
