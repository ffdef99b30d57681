"""What the training examples share: arguments, the data, the ViT (timm), EMA, and the step log."""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

ROOT = Path(__file__).resolve().parents[1]


def parser(description: str, config: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--config", default=str(ROOT / "configs" / config), help="training config (YAML)")
    p.add_argument("--data", default=None, help="image folder; default: the built-in sample data")
    p.add_argument("--steps", type=int, default=100, help="training steps")
    p.add_argument("--arch", default="vit_small_patch16_224",
                   help="timm ViT name, or 'tiny' (2 blocks of width 64: for tests and smoke runs)")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--batch-size", type=int, default=None, help="override the config's loader.batch_size")
    p.add_argument("--device", default="auto", choices=["auto", "gpu", "cpu"])
    p.add_argument("--threads", type=int, default=None, help="DALI threads (default: the loader's)")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--on-error", default=None, choices=["raise", "skip"],
                   help="a bad image file: stop naming it (raise) or train on without it (skip); default: the config's")
    p.add_argument("--crops", default=None, help="override the config's crops (e.g. 2x64,4x32 for a quick CPU run)")
    return p


def data_folder(data: Optional[str]) -> str:
    if data is not None:
        return data
    from dali_multicrop.sample_data import ensure_sample_data

    return str(ensure_sample_data(3000))


def loader_overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"device": args.device, "seed": args.seed}
    if args.batch_size is not None:
        out["batch_size"] = args.batch_size
    if args.threads is not None:
        out["num_threads"] = args.threads
    if args.on_error is not None:
        out["on_error"] = args.on_error
    if args.crops is not None:
        out["crops"] = args.crops
    return out


def vit(arch: str, image_size: int, patch_size: int) -> torch.nn.Module:
    """A timm ViT without classifier that takes any crop size (``dynamic_img_size``)."""
    import timm
    from timm.models.vision_transformer import VisionTransformer

    if arch == "tiny":
        return VisionTransformer(img_size=image_size, patch_size=patch_size, embed_dim=64, depth=2, num_heads=2,
                                 num_classes=0, dynamic_img_size=True)
    return timm.create_model(arch, pretrained=False, num_classes=0, img_size=image_size, patch_size=patch_size,
                             dynamic_img_size=True)


def patch_tokens(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Patch embeddings with their positions, before the blocks: ``[B, N, D]`` (no class or register token)."""
    x = model.patch_embed(images)
    x = model._pos_embed(x)
    return x[:, model.num_prefix_tokens:]


def encode(model: torch.nn.Module, tokens: torch.Tensor, keep: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The ViT's blocks and final norm on a set of tokens ``[B, K, D]``; ``keep`` bool ``[B, K]``: the tokens that
    take part (padding does not: no token attends to it; see :func:`attend_to`)."""
    return run_blocks(model.blocks, tokens, keep, model.norm)


def attend_to(keep: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """An attention mask that lets every token attend to the ``keep`` ``[B, K]`` tokens only (padding is left out;
    ``[B, 1, 1, K]``, True = attend, as ``scaled_dot_product_attention`` takes it)."""
    return None if keep is None else keep[:, None, None, :]


def run_blocks(blocks: torch.nn.Module, tokens: torch.Tensor, keep: Optional[torch.Tensor],
               norm: torch.nn.Module) -> torch.Tensor:
    """timm transformer blocks in turn, each given :func:`attend_to`'s mask, then ``norm``."""
    mask = attend_to(keep)
    for block in blocks:
        tokens = block(tokens, attn_mask=mask)
    return norm(tokens)


@torch.no_grad()
def ema_update(target: torch.nn.Module, online: torch.nn.Module, momentum: float) -> None:
    for t, o in zip(target.parameters(), online.parameters()):
        t.mul_(momentum).add_(o.detach(), alpha=1.0 - momentum)


def autocast(device: torch.device):
    """bf16 autocast on CUDA (as the official JEPA and DINOv2 code train), nothing on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


@dataclass
class StepLog:
    """Per-step loss (and other ``values``), images/s and the time the step waited for its batch (the loader's share
    of a step). The losses stay on the device and are read back together, so a step never waits for the GPU: at the
    first step (with, on the CPU, how long ``steps`` steps will take at that pace), every ``every`` steps (0: never)
    and in :meth:`summary`, which prints one closing line. ``losses`` and ``series`` (the other values by name) hold
    the steps read back so far."""

    every: int
    steps: int = 0
    device: Optional[torch.device] = None
    arch: str = ""
    losses: list[float] = field(default_factory=list)
    series: dict[str, list[float]] = field(default_factory=dict)
    waits: list[float] = field(default_factory=list)
    images: int = 0
    started: float = field(default_factory=time.perf_counter)
    pending: list[tuple[int, list[torch.Tensor]]] = field(default_factory=list)
    names: list[str] = field(default_factory=lambda: ["loss"])

    def step(self, step: int, loss: torch.Tensor, images: int, waited: float, **values: torch.Tensor) -> None:
        self.pending.append((step, [loss.detach(), *(v.detach() for v in values.values())]))
        self.names = ["loss", *values]
        self.waits.append(waited)
        self.images += images
        if step == 0:
            self.read()
            elapsed = time.perf_counter() - self.started
            note = ""
            if self.device is not None and self.device.type == "cpu" and self.steps > 1:
                note = f"; on the CPU {self.steps} steps take about {_duration(elapsed * self.steps)} at this pace"
                note += "" if self.arch == "tiny" else " (--arch tiny for a quick run)"
            print(f"step 1: loss {self.losses[-1]:.4f}  first step {elapsed:.1f} s{note}", flush=True)
        elif self.every and (step + 1) % self.every == 0:
            self.read()
            elapsed = time.perf_counter() - self.started
            others = "".join(f"  {name} {values[-1]:.4f}" for name, values in self.series.items())
            print(f"step {step + 1}: loss {self.losses[-1]:.4f}{others}  {self.images / elapsed:,.1f} img/s  "
                  f"data wait {1e3 * sum(self.waits[-self.every:]) / self.every:.1f} ms/step", flush=True)

    def read(self) -> None:
        """Brings the pending steps' values to the host, all in one read-back; ``FloatingPointError`` at the first
        that is not finite."""
        if not self.pending:
            return
        rows = torch.stack([torch.stack([v.float() for v in values]) for _, values in self.pending]).tolist()
        for (step, _), row in zip(self.pending, rows):
            for name, value in zip(self.names, row):
                if not math.isfinite(value):
                    raise FloatingPointError(f"step {step}: the {name} is {value}")
            self.losses.append(row[0])
            for name, value in zip(self.names[1:], row[1:]):
                self.series.setdefault(name, []).append(value)
        self.pending.clear()

    def summary(self) -> str:
        """The closing line (printed too): steps, first and last loss, images/s, the data wait's share of the time."""
        self.read()
        elapsed = time.perf_counter() - self.started
        if not self.losses:
            line = "done: no step ran"
        else:
            others = "".join(f", {name} {values[0]:.4f} -> {values[-1]:.4f}" for name, values in self.series.items())
            line = (f"done: {len(self.losses)} steps in {_duration(elapsed)}, loss {self.losses[0]:.4f} -> "
                    f"{self.losses[-1]:.4f}{others}, {self.images / elapsed:,.1f} img/s, waiting for data "
                    f"{100 * sum(self.waits) / elapsed:.0f}% of the time")
        print(line, flush=True)
        return line


def announce(device: torch.device, arch: str, steps: int) -> None:
    """Says where the run trains before its first (on a CPU, long) step."""
    where = "the CPU (no CUDA GPU is used)" if device.type == "cpu" else str(device)
    print(f"training {arch} on {where} for {steps} steps; the first step's time follows", flush=True)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def batches(loader: Any, steps: int):
    """``(step, epoch, batch, seconds waited for it)`` over as many epochs as ``steps`` need."""
    step, epoch = 0, 0
    while step < steps:
        loader.set_epoch(epoch)
        iterator = iter(loader)
        while step < steps:
            start = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                break
            # A rank's last batch can be empty (see the README, "Epochs and shards"): a mean or cross-entropy over
            # zero samples is NaN. One process skips it; under DDP every rank must still step (collectives),
            # so use a zero loss that touches the parameters there: sum(p.sum() for p in model.parameters()) * 0.
            if batch.batch_size:
                yield step, epoch, batch, time.perf_counter() - start
                step += 1
        epoch += 1
