"""How close the crops are to the method's own transform: per operation against torchvision on PIL images
(``table.py``, ``dali-multicrop fidelity``) and in distribution against the method's own code (``distribution.py``,
Kolmogorov-Smirnov distances of per-crop statistics).

``from dali_multicrop.fidelity import resize_fidelity, colour_fidelity, ...`` gives ``table.py``'s names, imported
on first use (they need torch and torchvision)."""

from typing import Any

_TABLE = ("COLOUR_GOALS", "RESIZE_GOAL", "FidelityRow", "colour_fidelity", "format_rows", "natural_photos",
          "photo_crops", "resize_fidelity", "torchvision_colour")


def __getattr__(name: str) -> Any:
    if name not in _TABLE:
        raise AttributeError(f"module 'dali_multicrop.fidelity' has no attribute {name!r}")
    from . import table

    return getattr(table, name)


__all__ = list(_TABLE)
