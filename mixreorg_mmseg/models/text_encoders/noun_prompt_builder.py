"""The noun prompts of a batch of captions, built inside the model.

The string path of the segmentor: a tool that calls the model on raw
captions gets its prompts here. Training pipelines build the same prompts
per sample in the dataloader workers (``TokenizeCaption``); both use
:class:`~mixreorg_mmseg.utils.noun_prompts.NounPrompter`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from mmseg.registry import MODELS

from ...utils.caption_nouns import VocabularySource
from ...utils.noun_prompts import NounPrompter
from ...utils.prompt_templates import Templates


@MODELS.register_module()
class NounPromptBuilder(NounPrompter):
    """Noun prompts of a batch of captions, K per caption.

    Args:
        max_nouns, templates, vocabulary: as for
            :class:`~mixreorg_mmseg.utils.noun_prompts.NounPrompter` (errors
            about the vocabulary name the config key
            ``noun_prompts.vocabulary``).
        seed: Seed of this builder's own ``torch.Generator`` for the
            template draws; ``None`` draws from torch's global generator
            (which the Runner's ``randomness`` setting seeds).
    """

    def __init__(
        self,
        max_nouns: int = 3,
        templates: Templates = 'simple',
        vocabulary: VocabularySource | None = None,
        seed: int | None = None,
    ):
        super().__init__(
            max_nouns, templates, vocabulary, 'noun_prompts.vocabulary'
        )
        self.generator = None
        if seed is not None:
            self.generator = torch.Generator().manual_seed(int(seed))

    def __call__(
        self, captions: Sequence[str]
    ) -> tuple[list[str], torch.Tensor]:
        """Prompts and their validity for B captions.

        Returns:
            ``prompts``: ``B * K`` strings; prompt ``b * K + k`` is the
            ``k``-th noun of caption ``b`` in a template, or ``''`` when the
            caption has fewer than ``k + 1`` nouns.
            ``valid``: CPU ``BoolTensor [B, K]``, ``False`` at those
            padding prompts.
        """
        if isinstance(captions, str):
            raise TypeError('captions must be a list of str, not one str')
        captions = list(captions)
        choice = self.draw_templates(len(captions), self.generator)
        prompts: list[str] = []
        for b, caption in enumerate(captions):
            if not isinstance(caption, str):
                raise TypeError(
                    f'captions[{b}] must be a str, got '
                    f'{type(caption).__name__}'
                )
            prompts += self.prompts(caption, choice[b])
        valid = torch.tensor([p != '' for p in prompts], dtype=torch.bool)
        return prompts, valid.view(len(captions), self.max_nouns)
