"""Checkpoint I/O that never unpickles code.

The problem
-----------
torch >= 2.6 loads with ``weights_only=True`` by default. MMEngine 0.10.7
calls ``torch.load`` without the argument, and the training-state
checkpoints its Runner writes hold pickled Python objects that a weights-only
load refuses (``HistoryBuffer`` of the message hub, numpy arrays and scalars
such as ``best_score`` and ``eta``). So ``load_checkpoint``, ``load_from``
and ``--resume`` break. Turning ``weights_only`` off (or setting
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``) would fix that and would also let
any downloaded checkpoint run arbitrary code on load: a pickle is a program.
Allow-listing what MMEngine stores is no better as it stands, because
unpickling those numpy objects needs ``builtins.getattr``, with which a
pickle can reach any callable.

The fix
-------
* **Writing**: every checkpoint MMEngine writes goes through
  :func:`to_plain`, which stores ``HistoryBuffer`` objects, numpy arrays and
  numpy scalars as small tagged dicts of tensors and Python numbers. The file
  then holds nothing but tensors and containers.
* **Reading**: every load goes through :func:`safe_torch_load`:
  ``torch.load(weights_only=True)`` with torch's own allowlist plus
  :data:`TRAINING_STATE_SAFE_GLOBALS` (explicit, and empty by default, since
  the plain form needs nothing more), then :func:`from_plain` rebuilds the
  objects MMEngine expects. A file that needs any other global is refused
  with :class:`UnsafeCheckpointError`, which names the file and every
  global its pickle references (:func:`pickle_globals` reads them from the
  opcodes, without unpickling, so the names do not depend on how a torch
  version words its refusal). An empty, truncated or non-PyTorch file
  raises :class:`UnreadableCheckpointError` naming the file.
  ``weights_only=True`` is passed explicitly, so the environment variable
  ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` cannot switch it off.
* Model-weight files (ours, converted GroupViT, open_clip) are read with
  :func:`load_weights`: weights-only, no extra globals.

:func:`install_safe_checkpoint_io` wires this into MMEngine by replacing the
two names that ``mmengine.runner.checkpoint`` loads and saves with: its
``torch`` (``load`` and ``save`` are ours, everything else is torch) and its
``load_url`` (used by the ``http(s)://``, ``torchvision://``,
``open-mmlab://`` and ``mmcls://`` schemes, where torch's hub would
otherwise load with ``weights_only=False``). ``load_checkpoint``, the
Runner's ``load_from`` and ``resume``, ``tools/test.py`` and MMSeg's
``init_model`` all go through it. A checkpoint written by a stock MMEngine
(pickled ``HistoryBuffer``) is refused; if you trust where it came from,
``tools/misc/sanitize_checkpoint.py`` rewrites it in the plain form. The
refusal suggests that only when every global of the file is one a stock
MMEngine writes (:data:`MMENGINE_PICKLE_GLOBALS`).

Files written this way stay readable without this package: a stock
MMEngine on torch >= 2.6 loads their weights (``load_from``,
``init_model``); only resuming the training state needs the package, which
turns the tagged dicts back into MMEngine's objects.
"""

from __future__ import annotations

import contextlib
import io
import os
import os.path as osp
import pickle
import pickletools
import re
import types
import zipfile
from collections import OrderedDict
from typing import Any

import numpy as np
import torch

#: Globals a training-state checkpoint may hold beyond torch's own
#: weights-only allowlist (tensors, dtypes, ``torch.Size``, ``OrderedDict``
#: and the builtin containers). Empty: :func:`to_plain` writes everything
#: MMEngine's Runner stores (message hub, numpy values, optimizer and
#: scheduler states, dataset meta) as tensors and containers. A hook that
#: stores an object of its own class can allow that class explicitly with
#: :func:`allow_training_state_globals`; never allow callables.
TRAINING_STATE_SAFE_GLOBALS: list[type] = []

#: Key that marks a dict written by :func:`to_plain`.
PLAIN_TAG = '__mixreorg_plain__'

FileLike = str | os.PathLike | io.IOBase


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint needs an object that a weights-only load does not allow.

    Subclasses :class:`pickle.UnpicklingError` so code that catches torch's
    own error keeps working.
    """


def allow_training_state_globals(*classes: type) -> None:
    """Allow extra data classes in training-state checkpoints.

    Only for plain data classes your own hooks store; a function or any class
    whose construction has side effects turns a checkpoint back into code.
    """
    for cls in classes:
        if not isinstance(cls, type):
            raise TypeError(f'only classes can be allowed, got {cls!r}')
        if cls not in TRAINING_STATE_SAFE_GLOBALS:
            TRAINING_STATE_SAFE_GLOBALS.append(cls)


# --------------------------------------------------------------------------
# plain form
# --------------------------------------------------------------------------


def to_plain(obj: Any) -> Any:
    """Return ``obj`` with MMEngine's pickled objects stored as tensors.

    ``HistoryBuffer`` -> ``{tag: 'HistoryBuffer', log_history, count_history,
    max_length}``; numeric ``np.ndarray`` / numpy scalar -> ``{tag:
    'ndarray' | 'numpy_scalar', data: Tensor}``. ``dict``, ``OrderedDict``,
    ``list`` and ``tuple`` are walked; everything else is returned as is
    (tensors, strings, numbers...). The input is not modified.
    """
    from mmengine.logging import HistoryBuffer

    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, HistoryBuffer):
        log_history, count_history = obj.data
        return {
            PLAIN_TAG: 'HistoryBuffer',
            'log_history': _array_to_tensor(log_history),
            'count_history': _array_to_tensor(count_history),
            'max_length': int(obj.max_length),
        }
    if isinstance(obj, np.ndarray) and _is_numeric(obj.dtype):
        return {PLAIN_TAG: 'ndarray', 'data': _array_to_tensor(obj)}
    if isinstance(obj, np.generic) and _is_numeric(obj.dtype):
        return {PLAIN_TAG: 'numpy_scalar', 'data': _array_to_tensor(obj)}
    if type(obj) in _CONTAINERS:
        return _map_container(obj, to_plain)
    return obj


def from_plain(obj: Any) -> Any:
    """Inverse of :func:`to_plain`: rebuild the objects from tagged dicts."""
    from mmengine.logging import HistoryBuffer

    if isinstance(obj, torch.Tensor):
        return obj
    if type(obj) in (dict, OrderedDict):
        tag = obj.get(PLAIN_TAG)
        if tag == 'HistoryBuffer':
            return HistoryBuffer(
                obj['log_history'].numpy(),
                obj['count_history'].numpy(),
                max_length=obj['max_length'],
            )
        if tag == 'ndarray':
            return obj['data'].numpy()
        if tag == 'numpy_scalar':
            return obj['data'].numpy()[()]
        if tag is not None:
            raise ValueError(f'unknown plain-form tag {tag!r}')
    if type(obj) in _CONTAINERS:
        return _map_container(obj, from_plain)
    return obj


_CONTAINERS = (dict, OrderedDict, list, tuple)


def _map_container(obj: Any, fn) -> Any:
    """Apply ``fn`` to the values of a container, keeping its type."""
    if isinstance(obj, dict):
        mapped = type(obj)((key, fn(value)) for key, value in obj.items())
        # a module's state_dict keeps its layers' versions here
        if hasattr(obj, '_metadata'):
            mapped._metadata = obj._metadata
        return mapped
    return type(obj)(fn(value) for value in obj)


def _is_numeric(dtype: np.dtype) -> bool:
    return dtype.kind in 'biufc'


def _array_to_tensor(array: Any) -> torch.Tensor:
    # copy: the tensor must own its memory, not alias a (read-only) array
    return torch.from_numpy(np.array(array, copy=True))


# --------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------


def _describe(f: FileLike) -> str:
    if isinstance(f, (str, os.PathLike)):
        return os.fspath(f)
    return str(getattr(f, 'name', '<in-memory buffer>'))


# --------------------------------------------------------------------------
# reading a pickle's globals without running it
# --------------------------------------------------------------------------

#: Opcodes that push a string a later ``STACK_GLOBAL`` may take as module
#: or name.
_STRING_OPS = frozenset(
    {
        'SHORT_BINUNICODE',
        'BINUNICODE',
        'BINUNICODE8',
        'UNICODE',
        'SHORT_BINSTRING',
        'BINSTRING',
        'STRING',
    }
)
_MEMO_PUT_OPS = frozenset({'PUT', 'BINPUT', 'LONG_BINPUT'})
_MEMO_GET_OPS = frozenset({'GET', 'BINGET', 'LONG_BINGET'})

#: A legacy (non-zip) ``torch.save`` file is five pickles in a row (magic
#: number, protocol, system info, the object, the storage keys) followed
#: by raw storage bytes; a plain pickle file is one.
_MAX_PICKLES = 5

#: Python 2 names that protocol-2 pickles use for ``builtins``.
_MODULE_ALIASES = {'__builtin__': 'builtins'}


def _globals_of_one_pickle(stream: io.IOBase) -> list[str]:
    """``module.name`` of every GLOBAL / STACK_GLOBAL of the pickle at
    ``stream`` 's position (which ends up after its STOP); opcodes are
    only decoded (:func:`pickletools.genops`), nothing is executed.
    Bytes that are not a whole pickle (a text file that happens to start
    like one) raise, so they never yield names."""
    found = []
    strings: list = []  # values pushed, in order (only strings matter)
    memo: dict = {}
    for opcode, arg, _ in pickletools.genops(stream):
        name = opcode.name
        if name == 'GLOBAL':
            module, _, attr = str(arg).partition(' ')
            found.append((module, attr))
            strings.append(None)
        elif name == 'STACK_GLOBAL':
            module, attr = (strings[-2:] + [None, None])[:2]
            found.append((module or '?', attr or '?'))
            strings.append(None)
        elif name in _STRING_OPS:
            strings.append(arg if isinstance(arg, str) else None)
        elif name == 'MEMOIZE':
            memo[len(memo)] = strings[-1] if strings else None
        elif name in _MEMO_PUT_OPS:
            memo[arg] = strings[-1] if strings else None
        elif name in _MEMO_GET_OPS:
            strings.append(memo.get(arg))
        else:
            strings.append(None)
    return [
        f'{_MODULE_ALIASES.get(module, module)}.{attr}'
        for module, attr in found
    ]


def pickle_globals(f: str | os.PathLike) -> list[str]:
    """The globals (``module.name``, first occurrence order) a checkpoint's
    pickle would import, read from its opcodes without unpickling.

    Handles the zip format of ``torch.save`` (its ``data.pkl``), the
    legacy format (the pickles before the raw storages) and a plain
    pickle file. A part that cannot be decoded ends the scan: what was
    found up to there is returned.
    """
    names: list[str] = []
    if zipfile.is_zipfile(f):
        with zipfile.ZipFile(f) as archive:
            members = [m for m in archive.namelist() if m.endswith('data.pkl')]
            for member in members[:1]:
                with archive.open(member) as stream:
                    with contextlib.suppress(Exception):
                        names += _globals_of_one_pickle(
                            io.BytesIO(stream.read())
                        )
    else:
        with open(f, 'rb') as stream:
            for _ in range(_MAX_PICKLES):
                try:
                    names += _globals_of_one_pickle(stream)
                except Exception:  # end of file, or raw storage bytes
                    break
    return list(dict.fromkeys(names))


#: What a stock MMEngine (0.10) training checkpoint pickles besides
#: tensors and containers: the message hub's ``HistoryBuffer`` and numpy
#: arrays, scalars and dtypes (numpy 1 and 2 spellings). Only a refused
#: file whose globals all lie in this set (or are torch's) gets the hint to
#: rewrite it with ``sanitize_checkpoint.py``; anything else is not what
#: MMEngine writes, and no rewriting is suggested.
MMENGINE_PICKLE_GLOBALS = frozenset(
    {
        'mmengine.logging.history_buffer.HistoryBuffer',
        'numpy.ndarray',
        'numpy.dtype',
        'numpy.core.multiarray._reconstruct',
        'numpy.core.multiarray.scalar',
        'numpy._core.multiarray._reconstruct',
        'numpy._core.multiarray.scalar',
        'builtins.getattr',
        'builtins.bytes',
        '_codecs.encode',
        'collections.OrderedDict',
    }
)


#: Globals torch's weights-only unpickler accepts by itself besides
#: ``torch.*`` (not named as culprits).
TORCH_WEIGHTS_ONLY_GLOBALS = frozenset(
    {
        '_codecs.encode',
        'builtins.bytearray',
        'builtins.complex',
        'builtins.set',
        'collections.Counter',
        'collections.OrderedDict',
    }
)


def _mmengine_global(name: str) -> bool:
    return name in MMENGINE_PICKLE_GLOBALS or name.startswith(
        ('torch.', 'numpy.dtypes.')
    )


def _foreign(names: list[str]) -> list[str]:
    """The globals of ``names`` that torch's weights-only load refuses."""
    return [
        n
        for n in names
        if not n.startswith('torch.') and n not in TORCH_WEIGHTS_ONLY_GLOBALS
    ]


def _refusal(source: str, what: str, names: list[str], detail: str) -> str:
    """The message of :class:`UnsafeCheckpointError`."""
    foreign = _foreign(names)
    listed = ', '.join(f'global "{n}"' for n in foreign)
    message = (
        f'Refusing to load {what} "{source}": it needs {listed}, which a '
        'weights-only load does not allow (unpickling it could run '
        f'arbitrary code; torch: {detail}). Checkpoints written with '
        'mixreorg_mmseg imported never need it.'
    )
    if all(_mmengine_global(n) for n in foreign):
        message += (
            ' These are the objects a stock MMEngine stores; if you trust '
            "the file's origin, rewrite it once in the safe form: python "
            'tools/misc/sanitize_checkpoint.py --i-trust-this-file SRC DST'
        )
    else:
        message += (
            ' They are not what MMEngine writes: do not unpickle this file.'
        )
    return message


#: How torch's refusal names the global it stopped at (two wordings).
_TORCH_NAMED_GLOBAL = re.compile(r'GLOBAL (\S+?)(?=[\s,]|$)')


class UnreadableCheckpointError(ValueError):
    """A checkpoint file is empty, truncated or not a PyTorch file at all;
    the message names the file."""


def _source_path(f: FileLike) -> str | None:
    """The file's path when it is one on disk (to scan or size it)."""
    if isinstance(f, (str, os.PathLike)) and osp.isfile(f):
        return os.fspath(f)
    return None


@contextlib.contextmanager
def _weights_only(
    safe_globals: list[type],
    f: FileLike,
    what: str,
    local_copy: str | None = None,
):
    """Allow ``safe_globals`` for weights-only loads inside the block, and
    turn torch's refusal into :class:`UnsafeCheckpointError` (naming the
    globals, read from the pickle's opcodes of ``f`` or of its
    ``local_copy``, e.g. a download) and a file torch cannot read into
    :class:`UnreadableCheckpointError`."""
    source, path = _describe(f), _source_path(f)
    if path is not None and osp.getsize(path) == 0:
        raise UnreadableCheckpointError(
            f'cannot read {what} "{source}": the file is empty (0 bytes)'
        )
    try:
        with torch.serialization.safe_globals(list(safe_globals)):
            yield
    except pickle.UnpicklingError as err:
        text = str(err)
        allowed = {
            f'{cls.__module__}.{cls.__qualname__}' for cls in safe_globals
        }
        # a download exists only now
        path = _source_path(local_copy or f)
        names = pickle_globals(path) if path is not None else []
        # without a file to read, the global torch stopped at
        names = names or _TORCH_NAMED_GLOBAL.findall(text)
        names = [n for n in names if n not in allowed]
        detail = next(
            (
                line.strip()
                for line in text.splitlines()
                if line.strip().startswith(('Unsupported', 'Trying'))
            ),
            (text.strip().splitlines() or [''])[-1],
        )
        if not _foreign(names):
            # nothing a weights-only load would have to refuse: the
            # bytes are not a checkpoint torch can read
            raise UnreadableCheckpointError(
                f'cannot read {what} "{source}": not a PyTorch checkpoint '
                f'(torch: {detail})'
            ) from None
        raise UnsafeCheckpointError(
            _refusal(source, what, names, detail)
        ) from None
    except (EOFError, KeyError, ValueError, RuntimeError) as err:
        if isinstance(err, UnreadableCheckpointError):
            raise
        reason = str(err).strip().splitlines()[0] if str(err) else ''
        raise UnreadableCheckpointError(
            f'cannot read {what} "{source}": not a PyTorch checkpoint, or a '
            f'truncated one ({type(err).__name__}'
            + (f': {reason}' if reason else '')
            + ')'
        ) from None


def safe_torch_load(f: FileLike, map_location: Any = None, **kwargs) -> Any:
    """Load a training-state checkpoint without running pickled code.

    Drop-in for ``torch.load`` inside MMEngine: ``weights_only=True`` with
    :data:`TRAINING_STATE_SAFE_GLOBALS`, then :func:`from_plain`.

    Raises:
        UnsafeCheckpointError: the file needs a global that is not allowed;
            the message names the file and the global.
    """
    if kwargs.get('weights_only') is False:
        raise ValueError(
            'safe_torch_load never loads with weights_only=False '
            f'(file: {_describe(f)})'
        )
    with _weights_only(TRAINING_STATE_SAFE_GLOBALS, f, 'checkpoint'):
        checkpoint = torch.load(
            f, map_location=map_location, weights_only=True
        )
    return from_plain(checkpoint)


def load_weights(f: FileLike, map_location: Any = 'cpu') -> Any:
    """Load a model-weight file (ours, GroupViT's, open_clip's) weights-only.

    No global beyond torch's own allowlist is accepted; a missing file raises
    ``FileNotFoundError`` naming it.
    """
    if isinstance(f, (str, os.PathLike)) and not osp.isfile(f):
        raise FileNotFoundError(f'weights file not found: {os.fspath(f)}')
    with _weights_only([], f, 'weights file'):
        return torch.load(f, map_location=map_location, weights_only=True)


def safe_torch_save(obj: Any, f: FileLike, *args, **kwargs) -> None:
    """``torch.save`` of :func:`to_plain` ``(obj)``."""
    torch.save(to_plain(obj), f, *args, **kwargs)


def safe_load_url(
    url: str,
    model_dir: str | None = None,
    map_location: Any = None,
    progress: bool = True,
    **kwargs,
) -> Any:
    """``torch.hub.load_state_dict_from_url`` (download, cache, hash check)
    with a weights-only load, then :func:`from_plain`.

    Replaces ``mmengine.utils.dl_utils.load_url`` for MMEngine's URL schemes,
    which calls torch's hub with ``weights_only=False``.
    """
    from urllib.parse import urlparse

    from torch.hub import get_dir, load_state_dict_from_url

    # where torch's hub keeps the download: the refusal reads its globals
    cached = osp.join(
        model_dir or osp.join(get_dir(), 'checkpoints'),
        kwargs.get('file_name') or osp.basename(urlparse(url).path),
    )
    with _weights_only(
        TRAINING_STATE_SAFE_GLOBALS, url, 'checkpoint', local_copy=cached
    ):
        checkpoint = load_state_dict_from_url(
            url,
            model_dir=model_dir,
            map_location=map_location,
            progress=progress,
            weights_only=True,
            **kwargs,
        )
    return from_plain(checkpoint)


# --------------------------------------------------------------------------
# wiring into MMEngine
# --------------------------------------------------------------------------


class _SafeTorch(types.ModuleType):
    """``torch`` as seen by ``mmengine.runner.checkpoint``: safe load/save."""

    load = staticmethod(safe_torch_load)
    save = staticmethod(safe_torch_save)

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)


def install_safe_checkpoint_io() -> bool:
    """Route MMEngine's checkpoint loading and saving through this module.

    Idempotent. Returns ``True`` if this call installed it.
    """
    import mmengine.runner.checkpoint as mmengine_checkpoint

    if isinstance(mmengine_checkpoint.torch, _SafeTorch):
        return False
    mmengine_checkpoint.torch = _SafeTorch('torch')
    mmengine_checkpoint.load_url = safe_load_url
    return True
