"""Compression: magnitude pruning native to Keras 3 and Keras's own int8 quantization (docs/compression.md)."""

from runner.compress.config import Compress, LayerPrune, Prune, Quantize

__all__ = ["Compress", "LayerPrune", "Prune", "Quantize"]
