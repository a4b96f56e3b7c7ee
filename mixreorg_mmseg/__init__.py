"""mixreorg-mmseg: MixReorg and GroupViT as an MMSegmentation 1.x plugin.

Importing the package (directly, or through a config's ``custom_imports``):

1. makes MMSegmentation importable on ``mmcv-lite``
   (:mod:`mixreorg_mmseg.utils.mmcv_lite_compat`); this must happen before
   anything imports ``mmseg.models`` or ``mmseg.utils``;
2. keeps ``mmpretrain.models`` importable next to transformers 5
   (:mod:`mixreorg_mmseg.utils.mmpretrain_compat`), before its first import;
3. installs the safe checkpoint I/O for MMEngine
   (:mod:`mixreorg_mmseg.utils.safe_checkpoint`);
4. imports every module of the package, which registers its classes in
   MMSeg's registries (``mmseg.registry.MODELS``, ``DATASETS``...).
"""

from .utils.mmcv_lite_compat import install_mmcv_ext_stub

install_mmcv_ext_stub()

from .utils.mmpretrain_compat import skip_mmpretrain_multimodal  # noqa: E402

skip_mmpretrain_multimodal()

from .utils.safe_checkpoint import install_safe_checkpoint_io  # noqa: E402

install_safe_checkpoint_io()

from . import apis, cli, datasets, engine, models  # noqa: E402,F401  (registers)
from .version import __version__  # noqa: E402

__all__ = ['__version__']
