"""Count the samples of webdataset shards and check each one.

Every shard is read to its end: it must open and untar completely, and
every sample must have an image that decodes and a non-empty ``.txt``
caption. Prints one row per shard and a total; exits with status 1 when
any shard has a problem.

    python tools/dataset_converters/summarize_shards.py \
        'data/cc12m/{00000..01242}.tar'
"""

import argparse
import sys

from mixreorg_mmseg.datasets import check_shard, expand_shards
from mixreorg_mmseg.datasets.shard_io import SKIP_REASONS

SHORT = {
    'corrupt_image': 'bad img',
    'missing_image': 'no img',
    'empty_caption': 'empty txt',
    'missing_caption': 'no txt',
    'bad_shard': 'bad tar',
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'shards', nargs='+', help='shard paths or brace patterns'
    )
    parser.add_argument(
        '--no-decode',
        action='store_true',
        help='do not decode the images (faster; only checks presence)',
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    shards = expand_shards(args.shards)
    columns = [r for r in SKIP_REASONS if r in SHORT]
    width = max(len(s) for s in shards + ['total'])
    header = f'{"shard":<{width}}  {"samples":>8}  {"good":>8}  ' + '  '.join(
        f'{SHORT[r]:>9}' for r in columns
    )
    print(header)
    print('-' * len(header))
    totals = dict(samples=0, good=0, **dict.fromkeys(columns, 0))
    failed = []
    for shard in shards:
        report = check_shard(shard, decode_images=not args.no_decode)
        totals['samples'] += report.samples
        totals['good'] += report.good
        for r in columns:
            totals[r] += report.skipped[r]
        print(
            f'{shard:<{width}}  {report.samples:>8}  {report.good:>8}  '
            + '  '.join(f'{report.skipped[r]:>9}' for r in columns)
            + ('' if report.error is None else f'  {report.error}')
        )
        if not report.ok:
            failed.append(shard)
    print('-' * len(header))
    print(
        f'{"total":<{width}}  {totals["samples"]:>8}  {totals["good"]:>8}  '
        + '  '.join(f'{totals[r]:>9}' for r in columns)
    )
    if failed:
        print(
            f'{len(failed)} of {len(shards)} shards have problems, e.g. '
            f'{failed[0]}',
            file=sys.stderr,
        )
        return 1
    print(f'{len(shards)} shards OK')
    return 0


if __name__ == '__main__':
    sys.exit(main())
