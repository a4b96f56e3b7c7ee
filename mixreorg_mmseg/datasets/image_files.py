"""Read and check image and label-map files, with errors that name the file.

MMCV's readers fail on a bad file without saying which: ``cv2.imdecode``
of a 0-byte file raises a bare ``cv2.error`` (``!buf.empty()``), Pillow an
``UnidentifiedImageError`` about a ``BytesIO`` object, and MMSeg's
``LoadAnnotations`` turns a 16-bit label map into uint8 by wrapping its
values (300 becomes 44) and keeps a colour label map's three channels
without a word. :func:`read_image` and :func:`check_label_map` read the
same way and raise :class:`BadImageFileError` naming the file;
:func:`find_bad_file` names the file at fault after a pipeline failed on
a sample.
"""

from __future__ import annotations

import io

import mmcv
import numpy as np
from mmengine.fileio import exists, get
from PIL import Image

#: Pillow modes of a label map whose pixel values are the class indices
#: (grey, palette, 1-bit): what ``LoadAnnotations`` reads as intended.
LABEL_MAP_MODES = ('L', 'P', '1')


class BadImageFileError(ValueError):
    """A file that should be an image or a label map is not a usable one;
    the message starts with its path."""


def _read_bytes(path: str, what: str, backend_args: dict | None) -> bytes:
    if not exists(path, backend_args=backend_args):
        raise FileNotFoundError(f'{what} not found: {path}')
    data = get(path, backend_args=backend_args)
    if not data:
        raise BadImageFileError(f'{path}: empty file (0 bytes), not {what}')
    return data


def read_image(
    path: str,
    channel_order: str = 'bgr',
    backend_args: dict | None = None,
) -> np.ndarray:
    """Read a colour image as ``LoadImageFromFile`` does (OpenCV).

    Args:
        path: Image file (any MMEngine file backend).
        channel_order: ``'bgr'`` (MMCV's default) or ``'rgb'``.
        backend_args: MMEngine file backend arguments.

    Returns:
        (H, W, 3) uint8 array.

    Raises:
        FileNotFoundError: no such file (naming it).
        BadImageFileError: an empty file, or bytes OpenCV cannot decode
            (naming the file and its size).
    """
    data = _read_bytes(path, 'an image', backend_args)
    try:
        img = mmcv.imfrombytes(data, flag='color', channel_order=channel_order)
    except Exception as error:  # any decoder error: the bytes are bad
        img, detail = None, f': {" ".join(str(error).split())}'
    else:
        detail = ''
    if img is None or img.size == 0:
        raise BadImageFileError(
            f'{path}: not an image OpenCV can decode ({len(data)} bytes'
            f'{detail})'
        )
    return img


def check_label_map(path: str, backend_args: dict | None = None) -> None:
    """Check that a label map reads as MMSeg's ``LoadAnnotations`` expects:
    one 8-bit channel (grey or palette PNG) of class indices.

    Raises:
        FileNotFoundError: no such file (naming it).
        BadImageFileError: an empty or undecodable file, colour channels
            (an RGB picture of the classes instead of their indices), or
            more than 8 bits (values above 255 would wrap when loaded).
    """
    data = _read_bytes(path, 'a label map', backend_args)
    try:
        with Image.open(io.BytesIO(data)) as img:
            mode = img.mode
    except Exception as error:  # any decoder error: the bytes are bad
        raise BadImageFileError(
            f'{path}: not a label map Pillow can decode ({len(data)} bytes: '
            f'{type(error).__name__})'
        ) from None
    if mode not in LABEL_MAP_MODES:
        raise BadImageFileError(
            f'{path}: label map has Pillow mode {mode!r}; it must be one '
            'channel of 8-bit class indices (grey "L" or palette "P" PNG), '
            'not colours or 16-bit values'
        )


class NameBadFilesMixin:
    """For an MMEngine dataset (put it before the dataset class): when the
    pipeline fails on a sample whose image or label map cannot be read,
    raise the error of :func:`find_bad_file`, naming that file, instead
    of the decoder's (without chaining it: the file is the cause). Other
    failures propagate unchanged."""

    def prepare_data(self, idx: int):
        try:
            return super().prepare_data(idx)
        except Exception:
            bad = find_bad_file(
                self.get_data_info(idx), getattr(self, 'backend_args', None)
            )
            if bad is None:
                raise
        raise bad from None


def find_bad_file(info: dict, backend_args: dict | None = None):
    """After a pipeline failed on a sample, the error naming its bad file.

    Args:
        info: The sample's data info (``img_path``, ``seg_map_path``).
        backend_args: MMEngine file backend arguments.

    Returns:
        A :class:`BadImageFileError` / ``FileNotFoundError`` naming the
        image or label map that cannot be read, or None when both read
        (the failure lies elsewhere).
    """
    checks = (
        ('img_path', read_image),
        ('seg_map_path', check_label_map),
    )
    for key, check in checks:
        if info.get(key):
            try:
                check(info[key], backend_args=backend_args)
            except (BadImageFileError, FileNotFoundError) as error:
                return error
    return None
