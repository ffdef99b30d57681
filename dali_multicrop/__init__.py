"""dali-multicrop: multi-crop views for self-supervised training, made by NVIDIA DALI on the GPU or CPU.

Public surface::

    from dali_multicrop import DaliMultiCropLoader, MultiCropMaskGenerator, MultiCropBatch, MultiCropSpec, ...
"""

from .batch import MultiCropBatch
from .curriculum import Curriculum, Ramp
from .imagecheck import ImageDecodeError, ImageReadError
from .loader import DaliMultiCropLoader
from .masking import IJEPA_LEVEL, MaskLevel, MultiCropMaskGenerator, MultiCropMasks, masks_to_indices
from .presets import list_presets, load_preset, parse_crops
from .dataset_source import DatasetSource
from .shards import TarShards
from .sources import ArraySource, FileList
from .spec import ColorJitter, CropGroup, MultiCropSpec

__all__ = [
    "ArraySource",
    "ColorJitter",
    "Curriculum",
    "Ramp",
    "CropGroup",
    "DaliMultiCropLoader",
    "FileList",
    "IJEPA_LEVEL",
    "MaskLevel",
    "MultiCropMaskGenerator",
    "MultiCropMasks",
    "list_presets",
    "load_preset",
    "masks_to_indices",
    "ImageDecodeError",
    "ImageReadError",
    "MultiCropBatch",
    "MultiCropSpec",
    "parse_crops",
    "TarShards",
    "DatasetSource",
]

__version__ = "0.1.0"
