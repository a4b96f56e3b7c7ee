"""The caption of a sample in the data pipeline, checked once for all the
caption transforms."""

from __future__ import annotations


def require_caption(results: dict, transform: str) -> str:
    """``results['caption']``, or a ``KeyError`` that names ``transform``
    and the sample's image when it is missing or not a string."""
    caption = results.get('caption')
    if not isinstance(caption, str):
        raise KeyError(
            f'{transform} needs a str caption in results["caption"]; '
            f'got {type(caption).__name__} for '
            f'{results.get("img_path", "<no img_path>")}'
        )
    return caption
