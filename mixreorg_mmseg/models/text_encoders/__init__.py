"""Text encoders, noun prompts and prompt templates."""

from .caption_nouns import NounPromptBuilder, NounVocabulary, extract_nouns
from .open_clip_text_encoder import OpenCLIPTextEncoder
from .prompt_templates import PROMPT_TEMPLATES, fill_templates, get_templates

__all__ = [
    'OpenCLIPTextEncoder',
    'NounPromptBuilder',
    'NounVocabulary',
    'PROMPT_TEMPLATES',
    'extract_nouns',
    'fill_templates',
    'get_templates',
]
