"""Image-caption pairs listed in a CSV or TSV file (map-style).

This is the text-supervised training data of GroupViT/MixReorg: each sample
is one image and one caption, no label map. The annotation file has a
header row; two of its columns (names configurable) give the image path,
relative to ``data_prefix['img_path']``, and the caption::

    image<TAB>caption
    00000.jpg<TAB>a photo of a disc and a triangle.

Rows are read with the standard ``csv`` dialects (``excel`` for ``.csv``,
``excel-tab`` for ``.tsv``), so quoted fields written by ``csv`` or pandas
read back exactly.

The samples go through the usual MMSeg pipeline; packing them with
``PackSegInputs(meta_keys=(..., 'caption'))`` gives the model
``dict(inputs=[C, H, W uint8], data_samples=[SegDataSample])`` whose
``metainfo['caption']`` holds the cleaned caption.
"""

from __future__ import annotations

import csv
import io
import logging
import os.path as osp

from mmengine.dataset import BaseDataset
from mmengine.fileio import exists, get_text, isfile, join_path
from mmengine.logging import print_log
from mmseg.registry import DATASETS
from open_clip.tokenizer import basic_clean, whitespace_clean

#: ``csv`` dialect of each supported annotation file extension.
DIALECTS = {'.csv': 'excel', '.tsv': 'excel-tab'}

#: How many offending line numbers a skip warning lists per reason.
MAX_LINES_SHOWN = 5


def clean_caption(text: str) -> str:
    """Repair a web caption: ``ftfy.fix_text``, HTML entities unescaped,
    runs of whitespace (newlines, tabs) collapsed to one space, stripped.

    This is open_clip's own pre-tokenisation cleaning (without lowering the
    case, which its tokenizer does itself), so cleaning here and tokenising
    later agree.
    """
    return whitespace_clean(basic_clean(text))


@DATASETS.register_module()
class ImageCaptionDataset(BaseDataset):
    """Image-caption pairs from a CSV/TSV annotation file.

    Rows whose caption is empty after cleaning, or whose image file does
    not exist, are skipped; :attr:`skipped` counts them by reason and a
    warning names the annotation file and the first offending lines. Images
    that exist but cannot be decoded are the pipeline's business (see
    :class:`~mixreorg_mmseg.datasets.transforms.LoadImageOrSkip`).

    Args:
        ann_file (str): ``.csv`` or ``.tsv`` file with a header row,
            relative to ``data_root`` unless absolute.
        image_key (str): Column of the image path. Defaults to ``'image'``.
        caption_key (str): Column of the caption. Defaults to
            ``'caption'``.
        max_skip_ratio (float): Largest fraction of rows that may be
            skipped; more means the file or ``data_prefix`` is wrong, and
            loading raises. Defaults to 0.1.
        backend_args (dict, optional): MMEngine file backend arguments for
            reading ``ann_file`` and checking that the images exist.
        **kwargs: As for :class:`mmengine.dataset.BaseDataset`
            (``data_root``, ``data_prefix=dict(img_path=...)``,
            ``pipeline``...).

    Each data info is ``dict(img_path, caption, sample_idx)``.
    """

    def __init__(
        self,
        ann_file: str,
        image_key: str = 'image',
        caption_key: str = 'caption',
        max_skip_ratio: float = 0.1,
        backend_args: dict | None = None,
        **kwargs,
    ) -> None:
        if not 0.0 <= max_skip_ratio <= 1.0:
            raise ValueError(
                f'max_skip_ratio must lie in [0, 1], got {max_skip_ratio}'
            )
        self.image_key = image_key
        self.caption_key = caption_key
        self.max_skip_ratio = max_skip_ratio
        self.backend_args = backend_args
        #: Rows left out by :meth:`load_data_list`, by reason.
        self.skipped = {'empty_caption': 0, 'missing_image': 0}
        super().__init__(ann_file=ann_file, **kwargs)

    def _read_rows(self):
        """Yield ``(line, image, caption)`` for every data row of the file.

        Raises:
            ValueError: unknown extension, empty file, missing column, or a
                row with the wrong number of fields (naming file and line).
        """
        ann_file = self.ann_file
        ext = osp.splitext(ann_file)[1].lower()
        if ext not in DIALECTS:
            raise ValueError(
                f'{ann_file}: annotation file must end in .csv or .tsv'
            )
        if not exists(ann_file, backend_args=self.backend_args):
            raise FileNotFoundError(f'annotation file not found: {ann_file}')
        # utf-8-sig: spreadsheet programs start CSVs with a byte-order mark,
        # which would otherwise become part of the first column's name
        text = get_text(
            ann_file, encoding='utf-8-sig', backend_args=self.backend_args
        )
        reader = csv.reader(io.StringIO(text), dialect=DIALECTS[ext])
        header = next(reader, None)
        if header is None:
            raise ValueError(f'{ann_file}: is empty (a header row is needed)')
        header = [name.strip() for name in header]
        columns = []
        for key in (self.image_key, self.caption_key):
            if key not in header:
                raise ValueError(
                    f'{ann_file}: no column "{key}" in the header row '
                    f'(columns: {header})'
                )
            columns.append(header.index(key))
        for row in reader:
            if not row:  # blank line
                continue
            if len(row) != len(header):
                raise ValueError(
                    f'{ann_file}:{reader.line_num}: expected {len(header)} '
                    f'fields as in the header, got {len(row)}'
                )
            yield reader.line_num, row[columns[0]], row[columns[1]]

    def load_data_list(self) -> list[dict]:
        """Read the annotation file; skip (and count) unusable rows.

        Raises:
            ValueError: if more than ``max_skip_ratio`` of the rows are
                skipped, or no row is left (naming the annotation file).
        """
        img_prefix = self.data_prefix.get('img_path', '')
        data_list = []
        bad_lines = {reason: [] for reason in self.skipped}
        num_rows = 0
        for line, image, caption in self._read_rows():
            num_rows += 1
            caption = clean_caption(caption)
            img_path = join_path(img_prefix, image.strip())
            if not caption:
                bad_lines['empty_caption'].append(line)
            elif not image.strip() or not isfile(
                img_path, backend_args=self.backend_args
            ):
                bad_lines['missing_image'].append(line)
            else:
                data_list.append(
                    dict(
                        img_path=img_path,
                        caption=caption,
                        sample_idx=len(data_list),
                    )
                )
        self.skipped = {k: len(v) for k, v in bad_lines.items()}
        num_skipped = sum(self.skipped.values())
        if num_skipped:
            reasons = ', '.join(
                f'{len(lines)} {reason.replace("_", " ")} (line '
                + ', '.join(map(str, lines[:MAX_LINES_SHOWN]))
                + (', ...' if len(lines) > MAX_LINES_SHOWN else '')
                + ')'
                for reason, lines in bad_lines.items()
                if lines
            )
            message = (
                f'{self.ann_file}: skipped {num_skipped} of {num_rows} rows: '
                f'{reasons}'
            )
            if num_skipped > self.max_skip_ratio * num_rows:
                raise ValueError(
                    f'{message}; more than max_skip_ratio='
                    f'{self.max_skip_ratio} of the rows: check the file and '
                    f'data_prefix (images looked up under "{img_prefix}")'
                )
            print_log(message, logger='current', level=logging.WARNING)
        if not data_list:
            raise ValueError(f'{self.ann_file}: lists no image-caption pair')
        return data_list
