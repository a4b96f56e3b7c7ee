"""Parameter counts of a model, per top-level component."""

from __future__ import annotations

import torch.nn as nn


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Parameters of each direct child of ``model`` (skipping the data
    preprocessor), of those held by ``model`` itself (``self``), and
    ``total``."""
    counts: dict[str, int] = {}
    for name, child in model.named_children():
        if name == 'data_preprocessor':
            continue
        n = sum(p.numel() for p in child.parameters())
        if n:
            counts[name] = n
    own = sum(p.numel() for p in model.parameters(recurse=False))
    if own:
        counts['self'] = own
    counts['total'] = sum(p.numel() for p in model.parameters())
    return counts


def format_parameter_counts(counts: dict[str, int]) -> str:
    """``'backbone 28.84M, text_encoder 22.15M, ..., total 55.73M'``."""
    return ', '.join(f'{k} {v / 1e6:.2f}M' for k, v in counts.items())
