"""What one benchmark run measures (:class:`BenchConfig`) and the checks of its settings, named as the ``bench``
command's options: the bottom of the benchmark package, read by the harness and by the backends."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional

from ..common.checks import check_probability
from ..common.system import visible_cores
from ..common.choices import DTYPES
from ..graph.executor import executor_settings
from ..graph.builder import HW_DECODER_LOAD
from ..sources import FileList
from ..recipes.spec import MultiCropSpec

__all__ = ["BenchConfig", "check_settings"]


def check_settings(spec: MultiCropSpec, *, batch_size: int, threads: int, warmup: int, batches: int, dtype: str,
                   masks: Optional[str], patch_size: int, seed: int, hw_decoder_load: float,
                   executor: str = "") -> None:
    """``ValueError`` for the first of a :class:`BenchConfig`'s settings that does not fit, named as the command's
    option that sets it (``--batch-size must be at least 1, got 0``): what ``bench`` checks before it makes data."""
    for name, value, low in (("batch_size", batch_size, 1), ("threads", threads, 1), ("warmup", warmup, 0),
                             ("batches", batches, 1), ("patch_size", patch_size, 1), ("seed", seed, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"--{name.replace('_', '-')} must be at least {low}, got {value}")
    if dtype not in DTYPES:
        raise ValueError(f"--dtype must be {' or '.join(DTYPES)}, got '{dtype}'")
    check_probability("--hw-decoder-load", hw_decoder_load)
    try:
        executor_settings(executor)
    except ValueError as exc:
        raise ValueError(f"--executor: {exc}") from None
    if masks is not None:  # a strategy the crops cannot serve: said now, not after the first backend
        from ..masking import MultiCropMaskGenerator

        MultiCropMaskGenerator(spec, patch_size=patch_size, strategy=masks)


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark run: the recipe, the data and how much to measure (counts are batches)."""

    spec: MultiCropSpec
    data: FileList
    data_path: str
    batch_size: int = 64
    threads: int = field(default_factory=visible_cores)
    warmup: int = 3
    batches: int = 20
    dtype: str = "float32"
    masks: Optional[str] = None
    patch_size: int = 16
    seed: int = 0
    hw_decoder_load: float = HW_DECODER_LOAD
    executor: str = ""
    """DALI's executor settings for the DALI backends, as text (:mod:`dali_multicrop.graph.executor`); "": DALI's
    own."""

    def __post_init__(self) -> None:
        check_settings(self.spec, **{f.name: getattr(self, f.name) for f in fields(self)
                                     if f.name not in ("spec", "data", "data_path")})

    def describe(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("data")
        out["spec"] = str(self.spec)
        out["images_in_data"] = len(self.data)
        return out
