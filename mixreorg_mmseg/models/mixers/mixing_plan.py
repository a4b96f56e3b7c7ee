"""The mixing plan: where every token of every mixed image comes from.

MixReorg (Cai et al., ICCV 2023, Sec. 3, Fig. 2) builds new images out of
the patches of several images of the batch; each patch keeps its link to
its own image's caption, so the mixed image comes with a segmentation label
for free, and the mixing can be undone exactly ("mixing restoration").

A :class:`MixingPlan` states, for token ``n`` of mixed image ``b``, its
source image ``source_image[b, n]`` and source position
``source_position[b, n]``. Mixing is one gather, restoration one scatter
with the same flat index, so ``restore(mix(x)) == x`` bit for bit whenever
the plan is a permutation of the batch's tokens (the plans
:class:`~.patch_mixer.PatchMixer` makes always are).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class MixingPlan:
    """Token-level mixing of a batch.

    Attributes:
        source_image: ``[B, N]`` long, batch index of the image token ``n``
            of mixed image ``b`` comes from.
        source_position: ``[B, N]`` long, its position in that image.
        group: ``[B]`` long, the mixing group of each image; a mixed image
            only holds tokens of images of its own group.
        hw_shape: ``(h, w)`` token grid, ``h * w == N``.
    """

    source_image: torch.Tensor
    source_position: torch.Tensor
    group: torch.Tensor
    hw_shape: tuple[int, int]

    def __post_init__(self):
        b, n = self.source_image.shape
        if self.source_position.shape != (b, n):
            raise ValueError(
                'source_position must have the shape of source_image '
                f'{(b, n)}, got {tuple(self.source_position.shape)}'
            )
        if self.hw_shape[0] * self.hw_shape[1] != n:
            raise ValueError(f'hw_shape {self.hw_shape} does not hold {n}')

    @property
    def batch_size(self) -> int:
        return self.source_image.shape[0]

    @property
    def num_tokens(self) -> int:
        return self.source_image.shape[1]

    def flat_index(self) -> torch.Tensor:
        """``[B * N]`` index into the flattened ``[B * N, C]`` tokens."""
        return (
            self.source_image * self.num_tokens + self.source_position
        ).flatten()

    def _check(self, tokens: torch.Tensor) -> None:
        if tokens.shape[:2] != (self.batch_size, self.num_tokens):
            raise ValueError(
                f'the plan mixes [{self.batch_size}, {self.num_tokens}, C] '
                f'tokens, got {tuple(tokens.shape)}'
            )

    def mix(self, tokens: torch.Tensor) -> torch.Tensor:
        """Build the mixed images: ``[B, N, C]`` -> ``[B, N, C]``, token
        ``(b, n)`` = ``tokens[source_image[b, n], source_position[b, n]]``
        (one gather)."""
        self._check(tokens)
        flat = tokens.reshape(-1, tokens.shape[-1])
        index = self.flat_index().to(tokens.device)
        return flat.index_select(0, index).view_as(tokens)

    def restore(self, mixed: torch.Tensor) -> torch.Tensor:
        """Put every mixed token back where it came from (one scatter):
        the exact inverse of :meth:`mix` for a permutation plan."""
        self._check(mixed)
        flat = mixed.reshape(-1, mixed.shape[-1])
        index = self.flat_index().to(mixed.device)
        restored = torch.empty_like(flat)
        restored.index_copy_(0, index, flat)
        return restored.view_as(mixed)

    def labels(self) -> torch.Tensor:
        """``[B, N]`` segmentation label of the mixed images: the batch
        index of the image (and so of the caption) of every token."""
        return self.source_image

    def label_map(self) -> torch.Tensor:
        """:meth:`labels` on the token grid, ``[B, h, w]``."""
        return self.source_image.view(self.batch_size, *self.hw_shape)

    def same_group(self) -> torch.Tensor:
        """``[B, B]`` bool, ``[b, c]``: captions of image ``c`` are
        candidates for the tokens of mixed image ``b``."""
        return self.group[:, None] == self.group[None, :]

    def is_permutation(self) -> bool:
        """Every token of the batch is used exactly once."""
        index = self.flat_index()
        counts = torch.bincount(index, minlength=index.numel())
        return bool((counts == 1).all())
