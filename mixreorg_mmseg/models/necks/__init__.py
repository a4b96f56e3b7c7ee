"""Projection heads into the joint embedding space."""

from .projection_mlp import ProjectionMLP

__all__ = ['ProjectionMLP']
