"""How DALI's executor runs the graph: the settings a DALI engineer tries first on a GPU graph, each left at DALI's
own default unless set.

=================  ==========================================  ===========================================
setting            values                                      DALI's default
=================  ==========================================  ===========================================
``concurrency``    ``none``, ``backend``, ``full``             ``backend``: one CPU, one mixed and one GPU
                   (DALI's ``OperatorConcurrency``)             operator at a time, side by side
``stream_policy``  ``single``, ``per_backend``,                ``per_backend``: one CUDA stream for the
                   ``per_operator`` (DALI's ``StreamPolicy``)   mixed operators, one for the GPU ones
``resize_batch``   a number of samples, or ``batch``           32: each resize kernel takes at most 32
                   (the loader's batch size)                    samples, so a batch of 256 is 8 launches
=================  ==========================================  ===========================================

Written ``concurrency=full,stream_policy=per_operator,resize_batch=batch`` on the command line
(``dali-multicrop bench --executor ...``); ``DaliMultiCropLoader(..., executor=...)`` takes the text or an
:class:`ExecutorSettings`. The settings change how the graph is scheduled, never what it computes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Optional, Union

__all__ = ["CONCURRENCY", "STREAM_POLICIES", "ExecutorSettings", "ExecutorLike", "executor_settings"]

CONCURRENCY = ("none", "backend", "full")
"""DALI's ``OperatorConcurrency`` policies, by name."""
STREAM_POLICIES = ("single", "per_backend", "per_operator")
"""DALI's ``StreamPolicy`` values, by name."""
_FORM = "expected KEY=VALUE pairs separated by commas, e.g. concurrency=full,stream_policy=per_operator,resize_batch=batch"


@dataclass(frozen=True)
class ExecutorSettings:
    """DALI's executor settings for the graph (see the module's table); None leaves DALI's default.

    ``concurrency``: one of :data:`CONCURRENCY`. ``stream_policy``: one of :data:`STREAM_POLICIES`.
    ``resize_batch``: the most samples one resize kernel launch takes (DALI's ``minibatch_size``), an integer
    >= 1 or ``"batch"`` for the graph's batch size."""

    concurrency: Optional[str] = None
    stream_policy: Optional[str] = None
    resize_batch: Union[int, str, None] = None

    def __post_init__(self) -> None:
        for name, allowed in (("concurrency", CONCURRENCY), ("stream_policy", STREAM_POLICIES)):
            value = getattr(self, name)
            if value is not None and value not in allowed:
                raise ValueError(f"executor {name} must be one of {', '.join(allowed)}, got {value!r}")
        size = self.resize_batch
        if size is not None and size != "batch" and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
            raise ValueError(f"executor resize_batch must be an integer >= 1 or 'batch', got {size!r}")

    @classmethod
    def parse(cls, text: str) -> "ExecutorSettings":
        """``"concurrency=full,resize_batch=256"`` as settings; ``ValueError`` naming the bad part."""
        values: dict[str, Any] = {}
        names = [f.name for f in fields(cls)]
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = (s.strip() for s in part.partition("="))
            if not sep or not value:
                raise ValueError(f"executor setting {part!r} has no value ({_FORM})")
            if key not in names:
                raise ValueError(f"executor setting {key!r} is not one of {', '.join(names)} ({_FORM})")
            if key in values:
                raise ValueError(f"executor setting {key!r} is given twice in {text!r}")
            values[key] = int(value) if key == "resize_batch" and value.isdigit() else value
        return cls(**values)

    def __str__(self) -> str:
        set_ = [f"{f.name}={getattr(self, f.name)}" for f in fields(self) if getattr(self, f.name) is not None]
        return ",".join(set_) or "DALI's defaults"

    def pipeline_args(self) -> dict[str, Any]:
        """The ``Pipeline`` keywords these settings set (none for DALI's defaults)."""
        from nvidia.dali.pipeline import OperatorConcurrency, StreamPolicy

        out: dict[str, Any] = {}
        if self.concurrency is not None:
            out["concurrency"] = OperatorConcurrency[self.concurrency.upper()]
        if self.stream_policy is not None:
            out["stream_policy"] = StreamPolicy[self.stream_policy.upper()]
        return out

    def resize_args(self, batch_size: int) -> dict[str, Any]:
        """The resize operator's keywords (``minibatch_size``) for a graph of ``batch_size`` samples."""
        if self.resize_batch is None:
            return {}
        return {"minibatch_size": batch_size if self.resize_batch == "batch" else int(self.resize_batch)}


ExecutorLike = Union[ExecutorSettings, str, None]
"""What takes executor settings: an :class:`ExecutorSettings`, its text form, or None (DALI's defaults)."""


def executor_settings(value: ExecutorLike) -> ExecutorSettings:
    """``value`` as :class:`ExecutorSettings` (``ValueError`` for anything else)."""
    if value is None:
        return ExecutorSettings()
    if isinstance(value, ExecutorSettings):
        return value
    if isinstance(value, str):
        return ExecutorSettings.parse(value)
    raise ValueError(f"executor must be ExecutorSettings, a text such as 'concurrency=full' or None, got {value!r}")
