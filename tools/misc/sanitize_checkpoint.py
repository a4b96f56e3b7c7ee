"""Rewrite a trusted checkpoint in the safe (weights-only loadable) form.

Checkpoints written by a stock MMEngine, or released with pickled Python
objects in them, are refused by this project's loaders because unpickling
them could run code. If, and only if, you trust where the file came from:

    python tools/misc/sanitize_checkpoint.py --i-trust-this-file SRC DST

loads SRC with a full unpickler once, converts MMEngine's objects to
tensors (mixreorg_mmseg.utils.safe_checkpoint.to_plain) and writes DST,
which then loads weights-only. Objects it cannot convert are named and
nothing is written.
"""

import argparse
import os
import sys

import torch

from mixreorg_mmseg.utils.safe_checkpoint import (
    UnsafeCheckpointError,
    safe_torch_load,
    safe_torch_save,
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src')
    parser.add_argument('dst')
    parser.add_argument(
        '--i-trust-this-file',
        action='store_true',
        help='required: SRC is unpickled without restrictions, which runs '
        'any code it contains',
    )
    args = parser.parse_args(argv)
    if not args.i_trust_this_file:
        sys.exit(
            'refusing: loading SRC runs any code pickled in it. Pass '
            '--i-trust-this-file if you trust its origin.'
        )
    checkpoint = torch.load(args.src, map_location='cpu', weights_only=False)
    safe_torch_save(checkpoint, args.dst)
    try:
        safe_torch_load(args.dst, map_location='cpu')
    except UnsafeCheckpointError as err:
        os.remove(args.dst)
        sys.exit(f'{args.src} holds objects with no safe form: {err}')
    print(f'wrote {args.dst} (loads weights-only)')


if __name__ == '__main__':
    main()
