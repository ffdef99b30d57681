"""Torch-side masks for multi-crop batches (no DALI needed): JEPA context/target masks and iBOT / DINOv2
block-wise patch masks."""

from .functional import masks_to_indices, sample_blocks
from .generator import STRATEGIES, MultiCropMaskGenerator, MultiCropMasks
from .levels import IJEPA_LEVEL, MaskLevel, hierarchical_levels
from .patches import PatchMaskGenerator, PatchMasks

__all__ = ["IJEPA_LEVEL", "MaskLevel", "MultiCropMaskGenerator", "MultiCropMasks", "PatchMaskGenerator", "PatchMasks",
           "STRATEGIES",
           "hierarchical_levels", "masks_to_indices", "sample_blocks"]
