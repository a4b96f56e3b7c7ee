"""The noun prompts of one caption: its nouns, each put into a template.

GroupViT's multi-label loss (Xu et al., CVPR 2022, Sec. 3.3) contrasts
each image with K sentences made from the nouns of its caption. This
module is the text side of that recipe without any tensor of the model:
the segmentor builds the prompts of a batch with it (the string path,
``NounPromptBuilder``) and the data pipeline builds those of one sample
(``TokenizeCaption``, in the dataloader workers), with the same rules.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from .caption_nouns import NounVocabulary, VocabularySource, extract_nouns
from .prompt_templates import Templates, get_templates


class NounPrompter:
    """Nouns of a caption in prompt templates, K slots per caption.

    Args:
        max_nouns: K, prompts per caption.
        templates: Template name or list (see
            :func:`~.prompt_templates.get_templates`). With one template the
            prompts are deterministic and :meth:`draw_templates` draws
            nothing; with several, each slot gets one drawn uniformly.
        vocabulary: Known nouns (iterable or file path), see
            :func:`~.caption_nouns.extract_nouns`; ``None`` uses the
            stop-list rules. A list is checked here; a file is read at the
            first use, so a model or pipeline is built before its data
            exists (a data set's ``classes.txt`` is written with the data),
            and a missing or empty file raises there, naming the file and
            ``config_key``.
        config_key: The config key that set ``vocabulary``, for errors.
    """

    def __init__(
        self,
        max_nouns: int = 3,
        templates: Templates = 'simple',
        vocabulary: VocabularySource | None = None,
        config_key: str = 'noun_prompts.vocabulary',
    ):
        if isinstance(max_nouns, bool) or not isinstance(max_nouns, int):
            raise TypeError(f'max_nouns must be an int, got {max_nouns!r}')
        if max_nouns < 1:
            raise ValueError(f'max_nouns must be >= 1, got {max_nouns}')
        self.max_nouns = max_nouns
        self.templates = get_templates(templates)
        self.config_key = config_key
        self._vocabulary_file = None
        self._vocabulary = None
        if isinstance(vocabulary, (str, os.PathLike)):
            self._vocabulary_file = os.fspath(vocabulary)
        elif vocabulary is not None:
            self._vocabulary = NounVocabulary.build(vocabulary)

    @property
    def vocabulary_file(self) -> str | None:
        """The vocabulary file's path, if the vocabulary comes from one."""
        return self._vocabulary_file

    @property
    def vocabulary(self) -> NounVocabulary | None:
        """The known nouns (``None``: the stop-list rules); a vocabulary
        file is read at the first access."""
        if self._vocabulary is None and self._vocabulary_file is not None:
            key = (
                f' (config key {self.config_key}: a file of nouns, one a '
                'line, e.g. the classes.txt of the data set whose captions '
                'are trained on)'
            )
            try:
                self._vocabulary = NounVocabulary.build(self._vocabulary_file)
            except FileNotFoundError as error:
                raise FileNotFoundError(f'{error}{key}') from None
            except ValueError as error:
                raise ValueError(f'{error}{key}') from None
        return self._vocabulary

    def draw_templates(
        self, num: int, generator: torch.Generator | None = None
    ) -> list[list[int]]:
        """Template indices ``[num][K]`` for ``num`` captions.

        One draw per slot, padding slots included, so the draws do not
        depend on how many nouns the captions have; with one template
        nothing is drawn (the random stream is left untouched).
        """
        k = self.max_nouns
        if len(self.templates) == 1:
            return [[0] * k for _ in range(num)]
        return torch.randint(
            len(self.templates), (num, k), generator=generator
        ).tolist()

    def prompts(self, caption: str, choice: Sequence[int]) -> list[str]:
        """The K prompts of ``caption``: its ``k``-th noun in template
        ``choice[k]``, or ``''`` where the caption has fewer than ``k + 1``
        nouns."""
        if not isinstance(caption, str):
            raise TypeError(
                f'caption must be a str, got {type(caption).__name__}'
            )
        nouns = extract_nouns(caption, self.max_nouns, self.vocabulary)
        filled = [
            self.templates[choice[slot]].format(noun)
            for slot, noun in enumerate(nouns)
        ]
        return filled + [''] * (self.max_nouns - len(nouns))
