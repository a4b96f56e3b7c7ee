"""Random mixing plans over a batch (MixReorg Sec. 3, Fig. 2 (a)).

Choices the paper leaves open, made here (``docs/method.md``):

- **Groups.** The batch is cut into consecutive groups of ``group_size``
  images (the sampler has already shuffled it; a last, smaller group takes
  the rest). Every mixed image is made of the images of its group only, so
  its segmentation has ``group_size`` candidate captions.
- **Positions are kept.** A token moves to another image but stays at its
  grid position, so position embeddings stay right and each group's mixed
  images are a permutation of its tokens: restoration is exact.
- **Unit.** Tokens move in ``unit x unit`` blocks (1: single patches). For
  every block position of a group an independent random permutation of the
  group's images says which image's block each mixed image receives, so
  every mixed image holds about ``1 / group_size`` of each source image.
- **Randomness.** ``seed=None`` draws from torch's global generator (the
  Runner seeds it through ``randomness``); an int gives the mixer its own
  generator, so the sequence of plans is reproducible on its own.
"""

from __future__ import annotations

import torch
from mmseg.registry import MODELS

from .mixing_plan import MixingPlan


@MODELS.register_module()
class PatchMixer:
    """Makes :class:`MixingPlan` s.

    Args:
        group_size: images per mixing group (1: no mixing, the plan is the
            identity).
        unit: side of the square blocks of tokens that move together.
        seed: seed of the mixer's own generator, or None for torch's
            global one.
    """

    def __init__(self, group_size: int = 2, unit: int = 1, seed=None):
        if isinstance(group_size, bool) or int(group_size) != group_size:
            raise TypeError(f'group_size must be an int, got {group_size!r}')
        if group_size < 1:
            raise ValueError(f'group_size must be >= 1, got {group_size}')
        if unit < 1:
            raise ValueError(f'unit must be >= 1, got {unit}')
        self.group_size = int(group_size)
        self.unit = int(unit)
        self.seed = seed
        self._generator = None
        if seed is not None:
            self._generator = torch.Generator().manual_seed(int(seed))

    def __repr__(self) -> str:
        return (
            f'{type(self).__name__}(group_size={self.group_size}, '
            f'unit={self.unit}, seed={self.seed})'
        )

    def check_grid(self, hw_shape: tuple[int, int]) -> None:
        """Fail, naming ``unit``, when blocks do not tile the grid."""
        h, w = hw_shape
        if h % self.unit or w % self.unit:
            raise ValueError(
                f'mixer unit={self.unit} must divide the token grid '
                f'{h}x{w} (img_size / patch_size)'
            )

    def _permutations(self, groups: int, size: int, units: int):
        """``[groups, size, units]``: for each group and block, a random
        permutation of the group's ``size`` images."""
        noise = torch.rand(groups, size, units, generator=self._generator)
        return noise.argsort(dim=1)

    def plan(
        self,
        batch_size: int,
        hw_shape: tuple[int, int],
        device: torch.device | str = 'cpu',
    ) -> MixingPlan:
        """A random plan for ``batch_size`` images of ``hw_shape`` tokens."""
        self.check_grid(hw_shape)
        h, w = hw_shape
        bh, bw = h // self.unit, w // self.unit
        # block index of every token position, row-major: [N]
        rows = torch.arange(h) // self.unit
        cols = torch.arange(w) // self.unit
        block_of_token = (rows[:, None] * bw + cols[None, :]).flatten()

        full, rest = divmod(batch_size, self.group_size)
        sources = []
        for groups, size, first in (
            (full, self.group_size, 0),
            (1 if rest else 0, rest, full * self.group_size),
        ):
            if groups == 0:
                continue
            perm = self._permutations(groups, size, bh * bw)
            offset = first + size * torch.arange(groups)[:, None, None]
            # [groups * size, N]: source image of every token
            sources.append(
                (perm + offset)[:, :, block_of_token].reshape(-1, h * w)
            )
        source_image = torch.cat(sources).to(device)
        positions = torch.arange(h * w, device=device)
        group = torch.arange(batch_size, device=device) // self.group_size
        return MixingPlan(
            source_image=source_image,
            source_position=positions.expand(batch_size, -1).clone(),
            group=group,
            hw_shape=(h, w),
        )
