"""Compatibility and I/O helpers that the rest of the package builds on.

Nothing here may import ``mmseg`` at module level: ``mmcv_lite_compat`` must
run before MMSeg's first import.
"""

from . import cli, mmcv_lite_compat, safe_checkpoint

__all__ = ['cli', 'mmcv_lite_compat', 'safe_checkpoint']
