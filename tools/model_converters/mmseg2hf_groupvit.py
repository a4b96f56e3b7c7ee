"""Export a GroupViT or MixReorg checkpoint as a transformers GroupViT folder.

    python tools/model_converters/mmseg2hf_groupvit.py CONFIG CHECKPOINT DST

CONFIG and CHECKPOINT are what ``tools/train.py`` trained (or what
``groupvit2mmseg.py`` converted); the checkpoint is loaded weights-only and
must fill every weight of CONFIG's model but MixReorg's training-only
``mixer.*``. DST becomes a folder that transformers loads with every key in
place (:mod:`mixreorg_mmseg.utils.hf_groupvit_checkpoint`; needs
``pip install 'mixreorg-mmseg[hf]'``)::

    from transformers import GroupViTModel
    model = GroupViTModel.from_pretrained(DST)

It holds ``config.json`` and ``model.safetensors``; MixReorg's mixer is
training-only and left out (the multi-label loss's temperature, training-only
too, is kept in the file's metadata, so that ``groupvit2mmseg.py`` gives back
exactly this checkpoint). Options
transformers' GroupViT cannot represent (the convolutional stem, the patch
readout, different head counts per stage...) stop the export with the
option named. Texts go in as CLIP BPE ids (``text_encoder.tokenize``, or
transformers' ``CLIPTokenizer`` of a GroupViT snapshot): docs/zero_shot.md.
"""

import argparse
import os
import os.path as osp
import sys

# the plugin first: mmseg on mmcv-lite, safe checkpoint I/O
import mixreorg_mmseg  # noqa: F401
from mixreorg_mmseg.utils.groupvit_checkpoint import GroupViTConversionError
from mixreorg_mmseg.utils.hf_groupvit_checkpoint import (
    CONFIG_FILE,
    SAFETENSORS_FILE,
    is_training_only,
    model_to_hf_folder,
)
from mixreorg_mmseg.utils.safe_checkpoint import (
    UnsafeCheckpointError,
    load_weights,
)

MMENGINE_STATE_KEY = 'state_dict'
DDP_PREFIX = 'module.'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config of the trained model')
    parser.add_argument('checkpoint', help='its MMEngine checkpoint')
    parser.add_argument('dst', help='output folder (new or empty)')
    return parser.parse_args(argv)


def build_model(config: str):
    """The model ``config`` builds (random weights)."""
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    return MODELS.build(Config.fromfile(config).model)


def load_trained_weights(model, path: str) -> None:
    """Load ``path`` into ``model``; every key but the training-only ones
    must be there, and nothing else.

    Raises:
        GroupViTConversionError: keys missing or unknown, named.
    """
    checkpoint = load_weights(path, map_location='cpu')
    state = checkpoint
    if isinstance(checkpoint, dict) and isinstance(
        checkpoint.get(MMENGINE_STATE_KEY), dict
    ):
        state = checkpoint[MMENGINE_STATE_KEY]
    if not isinstance(state, dict):
        raise GroupViTConversionError(f'{path} holds no state dict')
    state = {key.removeprefix(DDP_PREFIX): v for key, v in state.items()}
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not is_training_only(k)]
    problems = []
    if missing:
        problems.append(
            'keys the model has and it lacks: ' + ', '.join(missing)
        )
    if result.unexpected_keys:
        problems.append(
            'keys the model lacks: ' + ', '.join(result.unexpected_keys)
        )
    if problems:
        raise GroupViTConversionError(
            f'{path} does not fit the config: ' + ' | '.join(problems)
        )


def main(argv=None):
    args = parse_args(argv)
    for path, what in (
        (args.config, 'config'),
        (args.checkpoint, 'checkpoint'),
    ):
        if not osp.isfile(path):
            sys.exit(f'{what} not found: {path}')
    taken = [
        name
        for name in (CONFIG_FILE, SAFETENSORS_FILE)
        if osp.exists(osp.join(args.dst, name))
    ]
    if taken:
        sys.exit(
            f'{args.dst} already holds {", ".join(taken)}: choose a new folder'
        )
    model = build_model(args.config)
    try:
        load_trained_weights(model, args.checkpoint)
        dropped = model_to_hf_folder(
            model,
            args.dst,
            metadata=dict(
                converted_from=osp.basename(args.checkpoint),
                config=osp.basename(args.config),
            ),
        )
    except (GroupViTConversionError, UnsafeCheckpointError) as err:
        sys.exit(f'error: {err}')
    size = os.path.getsize(osp.join(args.dst, SAFETENSORS_FILE)) / 2**20
    print(
        f'wrote {args.dst}: {CONFIG_FILE}, {SAFETENSORS_FILE} ({size:.1f} MiB)'
    )
    if dropped:
        groups = {}
        for key in dropped:
            root = key.split('.', 1)[0] + ('.*' if '.' in key else '')
            groups[root] = groups.get(root, 0) + 1
        listed = ', '.join(f'{root} ({n})' for root, n in groups.items())
        print(f'left out of the weights as training-only: {listed}')


if __name__ == '__main__':
    main()
