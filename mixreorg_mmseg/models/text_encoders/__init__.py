"""Text encoders and the noun prompts of captions (the pure-text parts,
nouns and templates, live in ``mixreorg_mmseg.utils`` so that the data
pipeline can use them too; they are re-exported here)."""

from ...utils.caption_nouns import NounVocabulary, extract_nouns
from ...utils.prompt_templates import (
    PROMPT_TEMPLATES,
    fill_templates,
    get_templates,
)
from .noun_prompt_builder import NounPromptBuilder
from .open_clip_text_encoder import OpenCLIPTextEncoder

__all__ = [
    'OpenCLIPTextEncoder',
    'NounPromptBuilder',
    'NounVocabulary',
    'PROMPT_TEMPLATES',
    'extract_nouns',
    'fill_templates',
    'get_templates',
]
