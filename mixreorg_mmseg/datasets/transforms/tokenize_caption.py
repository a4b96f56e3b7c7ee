"""Tokenize a sample's caption and its noun prompts in the data pipeline.

Text work per training step is CPU work: the CLIP BPE tokenizer and the
noun rules run in Python. Done inside the model's forward, it runs on the
main process for the whole batch while the accelerator waits; done here,
it runs per sample in the dataloader workers, in parallel with the step.
The segmentor reads the tensors this transform adds (packed by
``PackSegInputs`` with their names in ``meta_keys``) and tokenizes the
strings itself only when a sample has none.
"""

from __future__ import annotations

import torch
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from ...utils.caption_nouns import VocabularySource
from ...utils.clip_tokens import tokenize
from ...utils.noun_prompts import NounPrompter
from ...utils.prompt_templates import Templates
from .caption_field import require_caption

#: The keys this transform adds; list them in ``PackSegInputs``'s
#: ``meta_keys`` (``prompt_*`` only with ``max_nouns``).
TOKEN_KEYS = ('caption_tokens', 'prompt_tokens', 'prompt_valid')


@TRANSFORMS.register_module()
class TokenizeCaption(BaseTransform):
    """CLIP tokens of ``results['caption']`` and of its noun prompts.

    The settings must be the model's: ``context_length`` its
    ``text_encoder.context_length``, and ``max_nouns`` / ``templates`` /
    ``vocabulary`` its ``noun_prompts``; the segmentor checks the first
    batch against its own string path and names the keys that differ.

    Required keys: ``caption`` (str).

    Added keys:
        ``caption_tokens``: ``LongTensor [L]``, ``L = context_length``.
        ``prompt_tokens``: ``LongTensor [K, L]``, ``K = max_nouns``: the
        ``k``-th noun of the caption in a template; all zeros where the
        caption has fewer than ``k + 1`` nouns.
        ``prompt_valid``: ``BoolTensor [K]``, False at those rows.

    Args:
        context_length: Token sequence length L.
        max_nouns: K, noun prompts per caption; ``None`` adds no prompts
            (a model without the multi-label loss).
        templates: Template name or list; with several, each slot's
            template is drawn from torch's generator of the worker (seeded
            per worker by the dataloader and the Runner's ``randomness``).
        vocabulary: Known nouns (list, or file read at the first sample),
            as the model's ``noun_prompts.vocabulary``.
    """

    def __init__(
        self,
        context_length: int = 77,
        max_nouns: int | None = 3,
        templates: Templates = 'simple',
        vocabulary: VocabularySource | None = None,
    ):
        if isinstance(context_length, bool) or not isinstance(
            context_length, int
        ):
            raise TypeError(
                f'context_length must be an int, got {context_length!r}'
            )
        if context_length < 2:
            raise ValueError(
                f'context_length must be >= 2, got {context_length}'
            )
        self.context_length = context_length
        self.prompter = None
        if max_nouns is not None:
            self.prompter = NounPrompter(
                max_nouns,
                templates,
                vocabulary,
                config_key='TokenizeCaption.vocabulary (data pipeline)',
            )

    def transform(self, results: dict) -> dict:
        caption = require_caption(results, 'TokenizeCaption')
        if self.prompter is None:
            results['caption_tokens'] = tokenize(
                [caption], self.context_length
            )[0]
            return results
        choice = self.prompter.draw_templates(1)[0]
        prompts = self.prompter.prompts(caption, choice)
        valid = torch.tensor([p != '' for p in prompts], dtype=torch.bool)
        texts = [caption] + [p for p in prompts if p]
        tokens = tokenize(texts, self.context_length)
        prompt_tokens = tokens.new_zeros(len(prompts), self.context_length)
        prompt_tokens[valid] = tokens[1:]
        results['caption_tokens'] = tokens[0]
        results['prompt_tokens'] = prompt_tokens
        results['prompt_valid'] = valid
        return results

    def __repr__(self) -> str:
        prompter = self.prompter
        nouns = (
            'max_nouns=None'
            if prompter is None
            else f'max_nouns={prompter.max_nouns}, '
            f'templates={len(prompter.templates)}'
        )
        return (
            f'{type(self).__name__}(context_length={self.context_length}, '
            f'{nouns})'
        )
