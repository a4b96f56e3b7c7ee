"""Count the samples of webdataset shards and check each one.

Every shard is read to its end: it must open and untar completely, up
to the tar's end-of-archive marker, hold as many samples as its
``_stats.json`` says (when it has one: img2dataset and ``write_shards``
write it), and every sample must have an image that decodes and a
non-empty ``.txt`` caption. Prints one row per shard and a total, the
``bad tar`` column counting the samples a truncated shard lost (``?``
when its count is unknown); exits with status 1 when any shard has a
problem. ``--write-stats`` writes the ``_stats.json`` of each shard that
read completely and has none, so that training counts exactly what a
later truncated copy loses.

    python tools/dataset_converters/summarize_shards.py \
        'data/cc12m/{00000..01242}.tar' [--write-stats]
"""

import argparse
import sys

from mixreorg_mmseg.datasets import check_shard, expand_shards
from mixreorg_mmseg.datasets.shard_io import (
    SKIP_REASONS,
    is_url,
    write_stats,
)

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
    parser.add_argument(
        '--write-stats',
        action='store_true',
        help='write SHARD_stats.json (its sample count) for each local '
        'shard that read completely and has none',
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
    written = []
    for shard in shards:
        report = check_shard(shard, decode_images=not args.no_decode)
        totals['samples'] += report.samples
        totals['good'] += report.good
        for r in columns:
            totals[r] += report.skipped[r]
        cells = [str(report.skipped[r]) for r in columns]
        if report.lost is None:
            cells[columns.index('bad_shard')] = '?'
        print(
            f'{shard:<{width}}  {report.samples:>8}  {report.good:>8}  '
            + '  '.join(f'{c:>9}' for c in cells)
            + ('' if report.error is None else f'  {report.error}')
        )
        if not report.ok:
            failed.append(shard)
        if (
            args.write_stats
            and report.error is None
            and report.expected is None
            and not is_url(shard)
        ):
            written.append(write_stats(shard, report.samples))
    print('-' * len(header))
    print(
        f'{"total":<{width}}  {totals["samples"]:>8}  {totals["good"]:>8}  '
        + '  '.join(f'{totals[r]:>9}' for r in columns)
    )
    if written:
        print(
            f'wrote the sample counts of {len(written)} shards, e.g. '
            f'{written[0]}'
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
