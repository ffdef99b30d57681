"""DINO pre-training on dali-multicrop batches (a complete, small training loop).

    python examples/train_dino.py [--config configs/dino_vits16.yaml] [--data DIR] [--steps 100]

The student (a timm ViT and DINO's projection head) sees every crop; the EMA teacher sees the global crops;
the loss is DINO's: the cross-entropy between the teacher's centred, sharpened softmax of one global crop and
the student's softmax of every other crop, averaged over those pairs; the centre follows the teacher's mean
output. bf16 autocast on CUDA. Prints loss, images/s and how long each step waited for its batch.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import autocast, batches, data_folder, ema_update, loader_overrides, parser, vit, StepLog  # noqa: E402

from dali_multicrop import DaliMultiCropLoader  # noqa: E402


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


def main(argv: Optional[Sequence[str]] = None) -> tuple[list[float], list[float]]:
    """Trains; returns the loss and the KL part of it (see :func:`dino_loss`) of every step."""
    args = parser(__doc__.splitlines()[0], "dino_vits16.yaml").parse_args(argv)
    torch.manual_seed(args.seed)
    loader = DaliMultiCropLoader.from_config(args.config, source=data_folder(args.data), **loader_overrides(args))
    device, spec = loader.torch_device, loader.spec
    backbone = vit(args.arch, spec.sizes[0], 16)
    student = Network(backbone, DINOHead(backbone.embed_dim)).to(device)
    teacher = copy.deepcopy(student).requires_grad_(False)
    center = torch.zeros(1, student.head.last.out_features, device=device)
    optimizer = torch.optim.AdamW(student.parameters(), lr=args.lr, weight_decay=0.04)
    log = StepLog(args.log_every)
    divergence: list[float] = []
    for step, _, batch, waited in batches(loader, args.steps):
        with autocast(device):
            with torch.no_grad():
                teacher_out = [t.float() for t in teacher(batch.crops[:spec.num_global])]
            student_out = [s.float() for s in student(batch.crops)]
            loss, kl = dino_loss(student_out, teacher_out, center)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ema_update(teacher, student, 0.996)
        with torch.no_grad():
            center.mul_(0.9).add_(torch.cat(teacher_out).mean(dim=0, keepdim=True), alpha=0.1)
        log.step(step, loss.item(), batch.batch_size, waited)
        divergence.append(kl.item())
    return log.losses, divergence


if __name__ == "__main__":
    main()
