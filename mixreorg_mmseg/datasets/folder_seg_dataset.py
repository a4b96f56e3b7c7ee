"""A segmentation folder in MMSeg's layout whose classes come from a text file.

Layout under ``data_root`` (the defaults of ``data_prefix``)::

    classes.txt                 one class name a line, background first if any
    images/<split>/<name>.jpg
    annotations/<split>/<name>.png   uint8 label maps, value i = line i

This lets a user evaluate (and, later, zero-shot test) any folder without
writing a dataset class: the class list is data, not code.
"""

from __future__ import annotations

import os.path as osp

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS


def read_class_names(path: str) -> list[str]:
    """Read one class name per line; blank lines and ``#`` comments skipped.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file lists no class, or a name twice (the error
            names the file and the line).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'class list not found: {path}')
    names: list[str] = []
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, start=1):
            name = line.split('#', 1)[0].strip()
            if not name:
                continue
            if name in names:
                raise ValueError(
                    f'{path}:{lineno}: class "{name}" is listed twice'
                )
            names.append(name)
    if not names:
        raise ValueError(f'{path}: lists no class names')
    return names


@DATASETS.register_module()
class FolderSegDataset(BaseSegDataset):
    """MMSeg ``BaseSegDataset`` whose ``classes`` are read from a text file.

    Args:
        data_root (str): Root of the folder (required: the class file is
            looked up relative to it).
        classes_file (str): Class list, relative to ``data_root``.
            Defaults to ``'classes.txt'``.
        **kwargs: Everything else as for ``BaseSegDataset``; ``metainfo``
            may still add a ``palette``, but must not also set ``classes``.
    """

    def __init__(
        self,
        data_root: str,
        classes_file: str = 'classes.txt',
        metainfo: dict | None = None,
        img_suffix: str = '.jpg',
        seg_map_suffix: str = '.png',
        **kwargs,
    ) -> None:
        metainfo = dict(metainfo or {})
        if 'classes' in metainfo:
            raise ValueError(
                'FolderSegDataset reads its classes from `classes_file`; do '
                'not also set metainfo["classes"]'
            )
        metainfo['classes'] = tuple(
            read_class_names(osp.join(data_root, classes_file))
        )
        super().__init__(
            data_root=data_root,
            metainfo=metainfo,
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            **kwargs,
        )
