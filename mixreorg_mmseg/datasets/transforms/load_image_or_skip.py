"""Load an image; skip the sample, with a warning, if it cannot be decoded.

Web-scraped image-caption sets always hold a few truncated or non-image
files. MMCV's ``LoadImageFromFile`` raises on them, which would end a long
training run; its ``ignore_empty=True`` returns ``None`` only for errors
raised while reading, not for bytes that OpenCV decodes to ``None`` (the
common case of a garbage file, which then fails an assertion), and it says
nothing about what it dropped. This subclass catches both, logs the file
once and returns ``None``, on which MMEngine's ``BaseDataset.__getitem__``
(outside ``test_mode``) draws another index, up to ``max_refetch`` times.
"""

from __future__ import annotations

import logging

from mmcv.transforms import LoadImageFromFile
from mmengine.logging import print_log
from mmseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class LoadImageOrSkip(LoadImageFromFile):
    """``LoadImageFromFile`` that drops unreadable images instead of raising.

    Adds ``img`` (H, W, 3 uint8, BGR by default), ``img_shape`` and
    ``ori_shape`` as ``LoadImageFromFile`` does; returns ``None`` when the
    file at ``img_path`` cannot be read or decoded, logging a warning with
    the path and the error the first time each path fails.

    Use it for training only: in ``test_mode`` MMEngine's datasets raise on
    a ``None`` sample (evaluation must not silently drop images).

    Args:
        **kwargs: As for :class:`mmcv.transforms.LoadImageFromFile`, except
            ``ignore_empty`` (this transform always skips, and counts).

    Attributes:
        skipped_files (list[str]): Distinct paths skipped so far, in order.
            With ``num_workers > 0`` each dataloader worker holds its own
            copy of the pipeline, so the count lives in the workers; the
            warnings are what the main process's log shows.
    """

    def __init__(self, **kwargs) -> None:
        if 'ignore_empty' in kwargs:
            raise TypeError(
                'LoadImageOrSkip always skips unreadable images; do not pass '
                '`ignore_empty`'
            )
        super().__init__(ignore_empty=False, **kwargs)
        self.skipped_files: list[str] = []
        self._skipped_set: set[str] = set()

    @property
    def num_skipped(self) -> int:
        """Number of distinct image files skipped so far."""
        return len(self.skipped_files)

    def transform(self, results: dict) -> dict | None:
        """Load ``results['img_path']``; ``None`` if it is unreadable."""
        if 'img_path' not in results:
            raise KeyError(
                f'LoadImageOrSkip needs "img_path" in the sample, got keys '
                f'{sorted(results)}'
            )
        try:
            return super().transform(results)
        except Exception as error:  # any decoder's error: the file is bad
            path = results['img_path']
            if path not in self._skipped_set:
                self._skipped_set.add(path)
                self.skipped_files.append(path)
                # OpenCV's messages span lines; keep the log entry on one
                reason = ' '.join(str(error).split())
                print_log(
                    f'skipping unreadable image {path} '
                    f'({type(error).__name__}: {reason}); '
                    f'{self.num_skipped} skipped so far',
                    logger='current',
                    level=logging.WARNING,
                )
            return None
