"""Crop specifications: what each group of crops looks like and how it is augmented.

A crop spec string such as ``"2x224,6x96"`` lists ``COUNTxSIZE`` groups separated by commas. The first
group holds the *global* crops, every later group holds *local* crops. Each group becomes one frozen
:class:`CropGroup` that is passed whole to the graph builder, so no setting is copied by hand through
layers.

Units and frames, stated once for every field below:

* ``size`` is the output side length in pixels (crops are square, ``size x size``).
* ``scale`` is a fraction of the *source image's area* (torchvision's ``RandomResizedCrop`` convention),
  a range ``(min, max)`` with ``0 < min <= max <= 1``.
* ``ratio`` is the crop window's aspect ratio *width / height*, a range drawn log-uniformly.
* every ``*_prob`` is a probability per crop in ``[0, 1]``.
* colour-jitter strengths follow torchvision's ``ColorJitter``: a factor is drawn uniformly from
  ``[max(0, 1 - s), 1 + s]`` for brightness, contrast and saturation; hue is a shift drawn from
  ``[-h, h]`` in *fractions of a turn* (``0 <= h <= 0.5``, torchvision's unit), added to the HSV hue as torchvision
  adds it to a PIL image's; the four operations run in an order drawn per crop, each as torchvision on PIL images
  computes it (:mod:`dali_multicrop.pixels.pil_colour`).
* ``blur_sigma`` is the Gaussian blur's standard deviation range in output pixels.
* ``interpolation`` is how a crop's window is resampled to ``size``: ``"bilinear"`` (torchvision's
  ``RandomResizedCrop`` default) or ``"bicubic"`` (DINO, DINOv2, iBOT), antialiased as torchvision does on PIL
  images (``docs/fidelity.md`` has the measured difference).
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Optional, Sequence, Union

from ..common.checks import check_int, check_probability, check_range

__all__ = [
    "ColorJitter",
    "CropGroup",
    "MultiCropSpec",
    "CropsLike",
    "GLOBAL_SCALE",
    "LOCAL_SCALE",
    "DEFAULT_RATIO",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INTERPOLATIONS",
]

GLOBAL_SCALE: tuple[float, float] = (0.4, 1.0)
"""Default area range of global crops, as a fraction of the source image's area."""
LOCAL_SCALE: tuple[float, float] = (0.05, 0.4)
"""Default area range of local crops, as a fraction of the source image's area."""
DEFAULT_RATIO: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
"""Default aspect-ratio range (width / height), drawn log-uniformly."""

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
"""Default per-channel (RGB) mean the crops are normalised with, in [0, 1] units."""
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
"""Default per-channel (RGB) standard deviation the crops are normalised with, in [0, 1] units."""

INTERPOLATIONS: tuple[str, ...] = ("bilinear", "bicubic")
"""How a crop's window may be resampled (torchvision's ``InterpolationMode`` names); the first is the default."""

_SPEC_FORM = "expected COUNTxSIZE groups separated by commas, e.g. 2x224,6x96"


@dataclass(frozen=True)
class ColorJitter:
    """Random brightness, contrast, saturation and hue change, applied together with ``probability``.

    Defaults are a mild jitter suited to JEPA training (half of DINO's 0.4/0.4/0.2/0.1 strengths).
    Set ``probability=0`` to switch it off.
    """

    probability: float = 0.8
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.1
    hue: float = 0.05

    def __post_init__(self) -> None:
        check_probability("ColorJitter.probability", self.probability)
        for name in ("brightness", "contrast", "saturation"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
                raise ValueError(f"ColorJitter.{name} must be a strength >= 0, got {value!r}")
        if not isinstance(self.hue, (int, float)) or not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"ColorJitter.hue must be in [0, 0.5] (a fraction of a turn), got {self.hue!r}")

    @property
    def active(self) -> bool:
        """Whether the jitter can change an image at all."""
        strengths = (self.brightness, self.contrast, self.saturation, self.hue)
        return self.probability > 0 and any(s > 0 for s in strengths)


NO_JITTER = ColorJitter(probability=0.0)


@dataclass(frozen=True)
class CropGroup:
    """``count`` square crops of ``size`` pixels sharing one augmentation recipe (see module docs).

    ``center``: None (default) for random-resized windows; a fraction ``c`` in (0, 1] for the evaluation
    window instead: the centred square of side ``c`` times the image's shorter side (torchvision's
    ``Resize(size / c)`` then ``CenterCrop(size)``; 224 / 256 = 0.875 is ImageNet's); ``scale`` and ``ratio``
    are then unused. ``interpolation``: one of :data:`INTERPOLATIONS` (default ``"bilinear"``, torchvision's).
    """

    count: int
    size: int
    scale: tuple[float, float]
    ratio: tuple[float, float] = DEFAULT_RATIO
    flip_prob: float = 0.5
    color_jitter: ColorJitter = field(default_factory=ColorJitter)
    grayscale_prob: float = 0.0
    blur_prob: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_prob: float = 0.0
    center: Optional[float] = None
    interpolation: str = INTERPOLATIONS[0]

    def __post_init__(self) -> None:
        for name in ("count", "size"):
            object.__setattr__(self, name, check_int(f"CropGroup.{name}", getattr(self, name), 1))
        object.__setattr__(self, "scale", check_range(
            "CropGroup.scale", self.scale, low=0.0, high=1.0, low_open=True,
            form=" (a fraction of the source image's area)"))
        object.__setattr__(self, "ratio", check_range(
            "CropGroup.ratio", self.ratio, low=0.0, high=math.inf, low_open=True,
            form=" (width / height)"))
        object.__setattr__(self, "blur_sigma", check_range(
            "CropGroup.blur_sigma", self.blur_sigma, low=0.0, high=math.inf, low_open=True,
            form=" (pixels)"))
        for name in ("flip_prob", "grayscale_prob", "blur_prob", "solarize_prob"):
            check_probability(f"CropGroup.{name}", getattr(self, name))
        if self.center is not None and (not isinstance(self.center, (int, float)) or isinstance(self.center, bool)
                                        or not 0.0 < self.center <= 1.0):
            raise ValueError(f"CropGroup.center must be None or a fraction in (0, 1] of the shorter side, got "
                             f"{self.center!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"CropGroup.interpolation must be one of {', '.join(INTERPOLATIONS)}, got "
                             f"{self.interpolation!r}")
        if not isinstance(self.color_jitter, ColorJitter):
            raise ValueError(f"CropGroup.color_jitter must be a ColorJitter, got {self.color_jitter!r}")

    def replace(self, **changes: Any) -> "CropGroup":
        """A copy with ``changes`` applied (validated like the constructor)."""
        return replace(self, **changes)


def _parse_int(text: str, what: str, group: str, spec: str) -> int:
    if not text:
        raise ValueError(f"crop spec '{spec}' is missing a {what} in group '{group}' ({_SPEC_FORM})")
    if not text.isdigit():
        raise ValueError(f"crop spec '{spec}' has a {what} '{text}' in group '{group}' that is not a "
                         f"whole number ({_SPEC_FORM})")
    value = int(text)
    if value < 1:
        raise ValueError(f"crop spec '{spec}' has {what} {value} in group '{group}'; it must be at least 1 "
                         f"({_SPEC_FORM})")
    return value


def _parse_groups(spec: str) -> list[tuple[int, int]]:
    if not isinstance(spec, str):
        raise ValueError(f"crop spec must be a string such as '2x224,6x96', got {spec!r}")
    if not spec.strip():
        raise ValueError(f"crop spec '{spec}' is empty ({_SPEC_FORM})")
    groups = []
    for position, raw in enumerate(spec.split(","), start=1):
        group = raw.strip()
        if not group:
            raise ValueError(f"crop spec '{spec}' has an empty group at position {position} ({_SPEC_FORM})")
        parts = re.split(r"[xX]", group)
        if len(parts) != 2:
            raise ValueError(f"crop spec '{spec}' has a group '{group}' that is not COUNTxSIZE ({_SPEC_FORM})")
        count = _parse_int(parts[0].strip(), "count", group, spec)
        size = _parse_int(parts[1].strip(), "size", group, spec)
        groups.append((count, size))
    return groups


MAX_CROPS = 256
"""Most crops per image a spec may ask for (measured on 2 CPU cores: 1000 crops of 32 px build and run, 6 s to
the first batch of 8, so the bound guards against typos rather than cost)."""


@dataclass(frozen=True)
class MultiCropSpec:
    """The crop groups of one multi-crop recipe: the first ``num_global_groups`` groups are global, the rest
    local (crops come out in this order, globals first).

    Build one with :meth:`parse` (``MultiCropSpec.parse("2x224,6x96")``: one global group) and change
    settings with :meth:`with_global` / :meth:`with_local`, e.g. ``spec.with_local(scale=(0.05, 0.32))``.
    Recipes whose global crops differ from each other (DINO blurs its first global crop always and its
    second rarely) list one group per global crop and set ``num_global_groups``; see ``pipelines/``.
    """

    groups: tuple[CropGroup, ...]
    num_global_groups: int = 1

    def __post_init__(self) -> None:
        groups = tuple(self.groups)
        if not groups:
            raise ValueError("MultiCropSpec.groups must hold at least one CropGroup (the global crops)")
        for group in groups:
            if not isinstance(group, CropGroup):
                raise ValueError(f"MultiCropSpec.groups must hold CropGroup objects, got {group!r}")
        total = sum(g.count for g in groups)
        if total > MAX_CROPS:
            raise ValueError(f"{total} crops per image is more than the {MAX_CROPS} one graph is built for (each crop "
                             f"is its own chain of operators; a typo such as '600x96' for '6x96'?)")
        n = check_int("MultiCropSpec.num_global_groups", self.num_global_groups, 1)
        if n > len(groups):
            raise ValueError(f"MultiCropSpec.num_global_groups must be in [1, {len(groups)}] (the number of "
                             f"groups), got {n!r}")
        object.__setattr__(self, "groups", groups)
        object.__setattr__(self, "num_global_groups", n)

    @classmethod
    def parse(cls, spec: str) -> "MultiCropSpec":
        """Parses ``"COUNTxSIZE,COUNTxSIZE,..."`` with the default recipe for global and local crops."""
        parsed = _parse_groups(spec)
        larger = [f"{c}x{s}" for c, s in parsed[1:] if s > parsed[0][1]]
        if larger:
            warnings.warn(f"crop spec '{spec}': its first group ({parsed[0][0]}x{parsed[0][1]}) is the global one, yet "
                          f"smaller than the local {', '.join(larger)}; the global crops come first (e.g. "
                          f"'{','.join(f'{c}x{s}' for c, s in sorted(parsed, key=lambda g: -g[1]))}')",
                          UserWarning, stacklevel=2)
        groups = [CropGroup(count=c, size=s, scale=GLOBAL_SCALE if i == 0 else LOCAL_SCALE)
                  for i, (c, s) in enumerate(parsed)]
        return cls(tuple(groups))

    @property
    def global_groups(self) -> tuple[CropGroup, ...]:
        return self.groups[:self.num_global_groups]

    @property
    def global_group(self) -> CropGroup:
        """The first global group."""
        return self.groups[0]

    @property
    def local_groups(self) -> tuple[CropGroup, ...]:
        return self.groups[self.num_global_groups:]

    @property
    def num_global(self) -> int:
        """Number of global crops (they come first)."""
        return sum(g.count for g in self.global_groups)

    @property
    def num_crops(self) -> int:
        """Number of crops per image, all groups together."""
        return sum(g.count for g in self.groups)

    @property
    def sizes(self) -> tuple[int, ...]:
        """Output side length of every crop, in output order (globals first)."""
        return tuple(g.size for g in self.groups for _ in range(g.count))

    def crops(self) -> Iterator[CropGroup]:
        """Yields the group of every crop, in output order (a group with count 3 is yielded 3 times)."""
        for group in self.groups:
            for _ in range(group.count):
                yield group

    def with_global(self, **changes: Any) -> "MultiCropSpec":
        """A copy whose every global group has ``changes`` applied."""
        n = self.num_global_groups
        return MultiCropSpec(tuple(g.replace(**changes) for g in self.groups[:n]) + self.groups[n:], n)

    def with_local(self, **changes: Any) -> "MultiCropSpec":
        """A copy whose every local group has ``changes`` applied."""
        n = self.num_global_groups
        return MultiCropSpec(self.groups[:n] + tuple(g.replace(**changes) for g in self.groups[n:]), n)

    @classmethod
    def evaluation(cls, size: int = 224, resize: int = 256) -> "MultiCropSpec":
        """The evaluation view (kNN, linear probes): the shorter side resized to ``resize``, the centre
        ``size x size`` cut out, normalised; no flip, no colour, nothing random."""
        size, resize = check_int("size", size, 1), check_int("resize", resize, 1)
        if size > resize:
            raise ValueError(f"size={size} is larger than resize={resize}: the centre crop must fit the resized image")
        return cls((CropGroup(count=1, size=size, scale=(1.0, 1.0), flip_prob=0.0, color_jitter=NO_JITTER,
                              center=size / resize),))

    def __str__(self) -> str:
        """The ``COUNTxSIZE`` string (recipe details and the global/local split are not in it)."""
        return ",".join(f"{g.count}x{g.size}" for g in self.groups)


CropsLike = Union[str, MultiCropSpec, Sequence[CropGroup]]
"""A crop spec string, a preset name or recipe path, a spec, or a list of groups (one global group); see
:func:`dali_multicrop.recipes.presets.parse_crops`."""
