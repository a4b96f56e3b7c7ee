"""A segmentation folder in MMSeg's layout whose classes come from a text file.

Layout under ``data_root`` (the defaults of ``data_prefix``)::

    classes.txt                 one class name a line, background first if any
    images/<split>/<name>.jpg
    annotations/<split>/<name>.png   uint8 label maps, value i = line i

This lets a user evaluate (and zero-shot test) any folder without writing
a dataset class: the class list is data, not code. A label map holding a
value that is neither a class index nor ``ignore_index`` is an error that
names the file (``IoUMetric`` would silently drop such pixels), and so is
a label map that is not one 8-bit channel (colours, or 16-bit values that
loading would wrap), an image or label map that is empty or does not
decode.
"""

from __future__ import annotations

import os.path as osp

import numpy as np
import torch
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from .image_files import NameBadFilesMixin, check_label_map


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
class FolderSegDataset(NameBadFilesMixin, BaseSegDataset):
    """MMSeg ``BaseSegDataset`` whose ``classes`` are read from a text file.

    Args:
        data_root (str): Root of the folder (required: the class file is
            looked up relative to it).
        classes_file (str): Class list, relative to ``data_root``.
            Defaults to ``'classes.txt'``.
        check_labels (bool): Check every label map's file format (one
            8-bit channel) and its loaded values (after the pipeline) for
            values outside ``0..len(classes) - 1`` and ``ignore_index``.
            Defaults to True.
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
        check_labels: bool = True,
        **kwargs,
    ) -> None:
        self.classes_file = osp.join(data_root, classes_file)
        self.check_labels = check_labels
        metainfo = dict(metainfo or {})
        if 'classes' in metainfo:
            raise ValueError(
                'FolderSegDataset reads its classes from `classes_file`; do '
                'not also set metainfo["classes"]'
            )
        metainfo['classes'] = tuple(read_class_names(self.classes_file))
        super().__init__(
            data_root=data_root,
            metainfo=metainfo,
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            **kwargs,
        )

    def prepare_data(self, idx: int):
        """The pipeline's output for sample ``idx``, label values checked.

        Raises:
            ValueError: the label map holds values that are no class index
                (naming the file, the values and the class list).
            BadImageFileError: the image or label map is empty, does not
                decode, or the label map is not one 8-bit channel (naming
                the file).
        """
        results = super().prepare_data(idx)
        if self.check_labels and results is not None:
            self._check_label_values(results)
        return results

    def _check_label_values(self, results: dict) -> None:
        sample = results.get('data_samples')
        if sample is not None and 'gt_sem_seg' in sample:
            labels = sample.gt_sem_seg.data
            path = sample.metainfo.get('seg_map_path')
        elif 'gt_seg_map' in results:
            labels = results['gt_seg_map']
            path = results.get('seg_map_path')
        else:  # a pipeline without annotations
            return
        if path:
            check_label_map(path, getattr(self, 'backend_args', None))
        if isinstance(labels, np.ndarray):
            labels = torch.from_numpy(labels)
        values = labels.unique()
        num_classes = len(self.metainfo['classes'])
        outside = (values < 0) | (values >= num_classes)
        bad = values[outside & (values != self.ignore_index)].tolist()
        if bad:
            raise ValueError(
                f'{path}: label values {sorted(bad)} are not classes of '
                f'{self.classes_file} ({num_classes} classes: values '
                f'0..{num_classes - 1}, {self.ignore_index} = ignored); add '
                'the missing class names or fix the label map'
            )
