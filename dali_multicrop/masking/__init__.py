"""Torch-side JEPA masking for multi-crop batches (no DALI needed)."""

from .functional import masks_to_indices, sample_blocks
from .generator import STRATEGIES, MultiCropMaskGenerator, MultiCropMasks
from .levels import IJEPA_LEVEL, MaskLevel, hierarchical_levels

__all__ = ["IJEPA_LEVEL", "MaskLevel", "MultiCropMaskGenerator", "MultiCropMasks", "STRATEGIES",
           "hierarchical_levels", "masks_to_indices", "sample_blocks"]
