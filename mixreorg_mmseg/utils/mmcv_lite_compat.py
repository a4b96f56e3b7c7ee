"""Make MMSegmentation importable on the pure-Python ``mmcv-lite`` build.

Why this module exists
----------------------
MMSegmentation 1.2.x imports ``mmcv.ops`` at module level in several places
(``mmseg/utils/mask_classification.py`` is reached by ``import mmseg.utils``,
hence by ``import mmseg.models`` and ``register_all_modules``). Every op module
in ``mmcv/ops`` calls ``ext_loader.load_ext('_ext', [...])``, which imports the
compiled extension ``mmcv._ext``. ``mmcv-lite`` ships no compiled extension,
so MMSeg's registries, its tools and our configs all fail to import with
``ModuleNotFoundError: No module named 'mmcv._ext'`` although nothing this
project runs needs a compiled op.

What it does
------------
:func:`install_mmcv_ext_stub` acts only when ``mmcv._ext`` cannot be
imported. It then registers a stand-in module under that name whose
attributes are callables that raise :class:`MissingCompiledOpError`, naming
the op and saying to install full mmcv. Importing MMSeg works; *calling* a
compiled op (``PSAMask``, deformable convolution, ``nms``...) fails loudly
instead of silently computing something else.

The stand-in's ``__spec__`` has no loader, so
``pkgutil.find_loader('mmcv._ext')`` still answers ``None`` and
``mmengine.utils.dl_utils.mmcv_full_available()`` keeps returning ``False``:
MMEngine does not mistake the lite build for full mmcv (it would then try to
use mmcv's compiled DDP helpers).

With full mmcv installed, the real ``mmcv._ext`` imports and this module does
nothing at all.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import types

#: Name of the compiled extension module that ``mmcv-lite`` lacks.
EXT_NAME = 'mmcv._ext'

INSTALL_HINT = (
    'Install the full mmcv build (compiled ops) instead of mmcv-lite; see '
    'docs/install.md ("GPU machines: full mmcv").'
)


class MissingCompiledOpError(RuntimeError):
    """A compiled mmcv op was called while only ``mmcv-lite`` is installed."""


class _MissingExtModule(types.ModuleType):
    """Stand-in for ``mmcv._ext`` whose every op raises when called."""

    def __getattr__(self, name: str):
        # Dunder look-ups (``__file__``, ``__path__``...) must fail as for a
        # normal module, or importlib and inspect get confused.
        if name.startswith('__') and name.endswith('__'):
            raise AttributeError(name)

        def missing_op(*args, **kwargs):
            raise MissingCompiledOpError(
                f'mmcv compiled op "{name}" is not available: the installed '
                f'mmcv is the pure-Python mmcv-lite build, which has no '
                f'compiled extension ({EXT_NAME}). {INSTALL_HINT}'
            )

        missing_op.__name__ = name
        missing_op.__qualname__ = f'{EXT_NAME}.{name}'
        return missing_op


def compiled_ops_available() -> bool:
    """Whether the real compiled ``mmcv._ext`` is importable.

    Returns ``False`` while the stand-in of this module is installed.
    """
    module = sys.modules.get(EXT_NAME)
    if module is not None:
        return not isinstance(module, _MissingExtModule)
    try:
        importlib.import_module(EXT_NAME)
    except ImportError:
        return False
    return True


def install_mmcv_ext_stub() -> bool:
    """Register the ``mmcv._ext`` stand-in if (and only if) it is missing.

    Idempotent. Must run before the first ``import mmseg.models`` /
    ``mmseg.utils``; ``import mixreorg_mmseg`` calls it first thing.

    Returns:
        bool: ``True`` if the stand-in was installed by this call, ``False``
        if the real extension is present or the stand-in was already there.
    """
    if EXT_NAME in sys.modules:
        return False
    if compiled_ops_available():
        return False
    import mmcv  # the lite build itself must be importable

    stub = _MissingExtModule(
        EXT_NAME,
        'Stand-in for the compiled mmcv extension (mmcv-lite); '
        'see mixreorg_mmseg.utils.mmcv_lite_compat.',
    )
    stub.__spec__ = importlib.machinery.ModuleSpec(EXT_NAME, loader=None)
    sys.modules[EXT_NAME] = stub
    mmcv._ext = stub
    return True
