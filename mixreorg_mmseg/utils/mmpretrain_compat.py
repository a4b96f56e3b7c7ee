"""Keep ``import mmpretrain.models`` working next to transformers 5.

Why this module exists
----------------------
mmpretrain 1.2 imports its multimodal models (BLIP, BLIP-2, Flamingo...)
whenever ``pycocotools`` and ``transformers>=4.28`` are installed
(``mmpretrain.utils.dependency.WITH_MULTIMODAL``). Those modules import
helpers that transformers 5 no longer has
(``transformers.modeling_utils.apply_chunking_to_forward``...), so with
transformers 5 installed ``import mmpretrain.models`` fails, and with it
our GroupViT (built on mmpretrain's ``TransformerEncoderLayer``). This
package uses transformers only to read and write GroupViT weight folders,
and no multimodal model of mmpretrain.

What it does
------------
:func:`skip_mmpretrain_multimodal` acts only when transformers 5 or later
is installed and ``mmpretrain.models`` has not been imported yet: it sets
mmpretrain's ``WITH_MULTIMODAL`` flag to False, so mmpretrain registers
the placeholders it registers when transformers is absent (building one of
those models then says which package it needs). With transformers 4 or
none, it does nothing.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys

#: The first transformers major version mmpretrain 1.2's multimodal models
#: cannot import.
FIRST_INCOMPATIBLE_MAJOR = 5


def transformers_major_version() -> int | None:
    """The installed transformers' major version (None: not installed)."""
    try:
        version = importlib.metadata.version('transformers')
    except importlib.metadata.PackageNotFoundError:
        return None
    head = version.split('.', 1)[0]
    return int(head) if head.isdigit() else None


def skip_mmpretrain_multimodal() -> bool:
    """Turn mmpretrain's multimodal imports off if transformers would break
    them (see the module docstring).

    Returns:
        True when the flag was set, False when nothing needed doing.
    """
    major = transformers_major_version()
    if major is None or major < FIRST_INCOMPATIBLE_MAJOR:
        return False
    if 'mmpretrain.models' in sys.modules:
        return False
    if importlib.util.find_spec('mmpretrain') is None:
        return False
    from mmpretrain.utils import dependency

    dependency.WITH_MULTIMODAL = False
    return True
