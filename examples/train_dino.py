"""DINO pre-training on dali-multicrop batches (a complete, small training loop); with --ibot, iBOT's.

    python examples/train_dino.py [--config configs/dino_vits16.yaml] [--data DIR] [--steps 100] [--ibot]

The student (a timm ViT and DINO's projection head) sees every crop; the EMA teacher sees the global crops;
the loss is DINO's: the cross-entropy between the teacher's centred, sharpened softmax of one global crop and
the student's softmax of every other crop, averaged over those pairs; the centre follows the teacher's mean
output. bf16 autocast on CUDA. Prints loss, images/s and how long each step waited for its batch.

``--ibot`` (iBOT, Zhou et al. 2022; DINOv2's iBOT loss): block-wise patch masks for the global crops
(:class:`~dali_multicrop.PatchMaskGenerator`, from the config's ``patch_masking:`` section or its preset's, on
the batch's device); in the student a masked patch's embedding is replaced by a learned mask token, and a patch
head's output there is trained towards the teacher's centred, sharpened softmax of the unmasked patch at the same
place (the cross-entropy over a crop's masked patches, averaged per crop, then over the global crops), beside
DINO's loss on the class tokens.
"""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (announce, autocast, batches, data_folder, ema_update, loader_overrides, parser, vit,  # noqa: E402
                    StepLog)

from dali_multicrop import DaliMultiCropLoader, PatchMaskGenerator  # noqa: E402


class DINOHead(torch.nn.Module):
    """DINO's head: a 3-layer MLP to a bottleneck, L2-normalised, then a weight-normalised prototype layer."""

    def __init__(self, embed_dim: int, out_dim: int = 4096, hidden: int = 512, bottleneck: int = 128) -> None:
        super().__init__()
        self.mlp = torch.nn.Sequential(torch.nn.Linear(embed_dim, hidden), torch.nn.GELU(),
                                       torch.nn.Linear(hidden, hidden), torch.nn.GELU(),
                                       torch.nn.Linear(hidden, bottleneck))
        self.last = torch.nn.utils.parametrizations.weight_norm(torch.nn.Linear(bottleneck, out_dim, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(F.normalize(self.mlp(x), dim=-1))


class Network(torch.nn.Module):
    def __init__(self, backbone: torch.nn.Module, head: DINOHead) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, crops: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Crops of one size go through the backbone together (DINO's MultiCropWrapper)."""
        out, start = [], 0
        while start < len(crops):
            end = start
            while end < len(crops) and crops[end].shape == crops[start].shape:
                end += 1
            features = self.head(self.backbone(torch.cat(list(crops[start:end]))))
            out.extend(features.chunk(end - start))
            start = end
        return out


class MaskedNetwork(torch.nn.Module):
    """iBOT's network: the ViT with a learned mask token, DINO's head on the class token and a second head on the
    patch tokens."""

    def __init__(self, backbone: torch.nn.Module, head: DINOHead, patch_head: DINOHead) -> None:
        super().__init__()
        self.backbone, self.head, self.patch_head = backbone, head, patch_head
        self.mask_token = torch.nn.Parameter(torch.zeros(backbone.embed_dim))

    def forward(self, images: torch.Tensor, mask: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Class-token and patch-token head outputs (``[B, K]``, ``[B, N, K]``) of ``images``; where ``mask``
        (bool ``[B, N]``, row-major over the patch grid) is True the patch embedding is the mask token."""
        vit = self.backbone
        x = vit.patch_embed(images)  # [B, h, w, D] (a timm ViT with dynamic_img_size)
        if mask is not None:
            x = torch.where(mask.view(*x.shape[:3], 1), self.mask_token.to(x.dtype), x)
        x = vit.norm(vit.blocks(vit.norm_pre(vit.patch_drop(vit._pos_embed(x)))))
        return self.head(x[:, 0]), self.patch_head(x[:, vit.num_prefix_tokens:])


def patch_loss(student: list[torch.Tensor], teacher: list[torch.Tensor], masks: list[torch.Tensor],
               center: torch.Tensor, student_temp: float = 0.1,
               teacher_temp: float = 0.04) -> tuple[torch.Tensor, torch.Tensor]:
    """iBOT's patch loss over the global crops (``[B, N, K]`` outputs, ``[B, N]`` masks): per crop the mean over
    its masked patches of the cross-entropy from the teacher's centred, sharpened softmax to the student's, then the
    mean over the batch and the crops; and its KL part (the loss minus the targets' own entropy, as
    :func:`dino_loss`)."""
    total, kl = 0.0, 0.0
    for s, t, mask in zip(student, teacher, masks):
        target = F.softmax((t - center) / teacher_temp, dim=-1).detach()
        cross = torch.sum(-target * F.log_softmax(s / student_temp, dim=-1), dim=-1)  # [B, N]
        entropy = torch.sum(-target * torch.log(target.clamp_min(1e-12)), dim=-1)
        weight = mask.float() / mask.sum(dim=-1, keepdim=True).clamp_min(1.0)
        total = total + (cross * weight).sum(dim=-1).mean()
        kl = kl + ((cross - entropy) * weight).sum(dim=-1).mean()
    return total / len(student), kl.detach() / len(student)


def dino_loss(student: list[torch.Tensor], teacher: list[torch.Tensor], center: torch.Tensor,
              student_temp: float = 0.1, teacher_temp: float = 0.04) -> tuple[torch.Tensor, torch.Tensor]:
    """DINO's loss, and its part that the student controls: the loss minus the targets' own entropy (the KL
    divergence from target to student; the entropy moves with the centring, whatever the student does)."""
    targets = [F.softmax((t - center) / teacher_temp, dim=-1).detach() for t in teacher]
    total, entropy, pairs = 0.0, 0.0, 0
    for q, target in enumerate(targets):
        own = torch.sum(-target * torch.log(target.clamp_min(1e-12)), dim=-1).mean()
        for v, s in enumerate(student):
            if v == q:
                continue
            total = total + torch.sum(-target * F.log_softmax(s / student_temp, dim=-1), dim=-1).mean()
            entropy = entropy + own
            pairs += 1
    return total / pairs, (total - entropy).detach() / pairs


@dataclass
class History:
    """Per step: the total loss, the KL part of DINO's loss (see :func:`dino_loss`) and, with ``--ibot``, the KL part
    of the patch loss (see :func:`patch_loss`)."""

    losses: list[float]
    divergence: list[float]
    patch_divergence: list[float] = field(default_factory=list)


def main(argv: Optional[Sequence[str]] = None) -> History:
    """Trains; returns the losses of every step (see :class:`History`)."""
    p = parser(__doc__.splitlines()[0], "dino_vits16.yaml")
    p.add_argument("--ibot", action="store_true", help="iBOT: masked global crops and the patch loss besides DINO's")
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    loader = DaliMultiCropLoader.from_config(args.config, source=data_folder(args.data), **loader_overrides(args))
    device, spec = loader.torch_device, loader.spec
    crops = {"crops": args.crops} if args.crops else {}
    masker = PatchMaskGenerator.from_config(args.config, seed=args.seed, **crops) if args.ibot else None
    backbone = vit(args.arch, spec.sizes[0], masker.patch_size if masker else 16)
    if masker:
        student: torch.nn.Module = MaskedNetwork(backbone, DINOHead(backbone.embed_dim),
                                                 DINOHead(backbone.embed_dim)).to(device)
    else:
        student = Network(backbone, DINOHead(backbone.embed_dim)).to(device)
    teacher = copy.deepcopy(student).requires_grad_(False)
    center = torch.zeros(1, student.head.last.out_features, device=device)
    patch_center = torch.zeros_like(center)
    optimizer = torch.optim.AdamW(student.parameters(), lr=args.lr, weight_decay=0.04,
                                  fused=True)  # fused: its step counts stay on the device, no read-back per step
    log = StepLog(args.log_every, args.steps, device, args.arch)
    announce(device, args.arch, args.steps)
    for step, epoch, batch, waited in batches(loader, args.steps):
        globals_ = batch.crops[:spec.num_global]
        with autocast(device):
            if masker is None:
                with torch.no_grad():
                    teacher_out = [t.float() for t in teacher(globals_)]
                student_out = [s.float() for s in student(batch.crops)]
                loss, kl = dino_loss(student_out, teacher_out, center)
            else:
                if step == 0 or epoch != masker.epoch:
                    masker.set_epoch(epoch)
                masks = masker(batch).ibot()  # one bool [B, N] per global crop, on the batch's device
                with torch.no_grad():
                    teacher_cls, teacher_patch = zip(*(teacher(crop) for crop in globals_))
                    teacher_out = [t.float() for t in teacher_cls]
                    teacher_patch = [t.float() for t in teacher_patch]
                masked = [student(crop, mask) for crop, mask in zip(globals_, masks)]
                locals_ = batch.crops[spec.num_global:]  # one size: one pass (DINO's MultiCropWrapper's way)
                local_out = list(student(torch.cat(locals_))[0].chunk(len(locals_))) if locals_ else []
                student_out = [cls.float() for cls, _ in masked] + [out.float() for out in local_out]
                cls_loss, kl = dino_loss(student_out, teacher_out, center)
                ploss, patch_kl = patch_loss([patch.float() for _, patch in masked], teacher_patch, masks,
                                             patch_center)
                loss = cls_loss + ploss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ema_update(teacher, student, 0.996)
        with torch.no_grad():
            center.mul_(0.9).add_(torch.cat(teacher_out).mean(dim=0, keepdim=True), alpha=0.1)
            if masker is not None:
                patch_mean = torch.cat([t.flatten(0, 1) for t in teacher_patch]).mean(dim=0, keepdim=True)
                patch_center.mul_(0.9).add_(patch_mean, alpha=0.1)
        # read back every --log-every steps only, all together: no step waits for the GPU
        log.step(step, loss, batch.batch_size, waited, divergence=kl,
                 **({"patch_divergence": patch_kl} if masker is not None else {}))
    log.summary()
    print(f"loader: {loader.stats}", flush=True)  # its side of the loop: waits, steps, img/s
    return History(log.losses, log.series.get("divergence", []), log.series.get("patch_divergence", []))


if __name__ == "__main__":
    main()
