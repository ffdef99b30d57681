"""dali-multicrop: multi-crop views for self-supervised training, made by NVIDIA DALI on the GPU or CPU.

Public surface::

    from dali_multicrop import DaliMultiCropLoader, MultiCropMaskGenerator, MultiCropBatch, MultiCropSpec, ...
"""

from typing import TYPE_CHECKING, Any

# Where each public name lives. Imported on first use (PEP 562), so that a worker process importing one small module
# of the package (dali_multicrop.workers) does not import torch.
_EXPORTS = {
    "MultiCropBatch": "loader.batch", "Curriculum": "recipes.curriculum", "Ramp": "recipes.curriculum",
    "ImageDecodeError": "badsamples.diagnose", "ImageReadError": "badsamples.diagnose",
    "DaliMultiCropLoader": "loader.loader", "IJEPA_LEVEL": "masking", "MaskLevel": "masking",
    "MultiCropMaskGenerator": "masking",
    "MultiCropMasks": "masking", "PatchMaskGenerator": "masking", "PatchMasks": "masking",
    "masks_to_indices": "masking", "list_presets": "recipes.presets", "load_preset": "recipes.presets",
    "parse_crops": "recipes.presets", "DatasetSource": "sources", "TarShards": "sources", "ArraySource": "sources",
    "FileList": "sources", "ColorJitter": "recipes.spec", "CropGroup": "recipes.spec", "MultiCropSpec": "recipes.spec",
}

if TYPE_CHECKING:
    from .loader.batch import MultiCropBatch
    from .recipes.curriculum import Curriculum, Ramp
    from .badsamples.diagnose import ImageDecodeError, ImageReadError
    from .loader.loader import DaliMultiCropLoader
    from .masking import (IJEPA_LEVEL, MaskLevel, MultiCropMaskGenerator, MultiCropMasks, PatchMaskGenerator,
                          PatchMasks, masks_to_indices)
    from .recipes.presets import list_presets, load_preset, parse_crops
    from .sources import ArraySource, DatasetSource, FileList, TarShards
    from .recipes.spec import ColorJitter, CropGroup, MultiCropSpec


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dali_multicrop' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


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
    "PatchMaskGenerator",
    "PatchMasks",
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
