"""I-JEPA / H-JEPA pre-training on dali-multicrop batches and masks (a complete, small training loop).

    python examples/train_ijepa.py [--config configs/multicrop_training.yaml] [--data DIR] [--steps 100]

Per batch: the masks of every global crop and level (``MultiCropMaskGenerator.from_config``); the context
encoder (a timm ViT) sees each global crop's context patches (plus every local crop's patches with the
``global_with_local_context`` strategy); the predictor (a narrow transformer) gets those tokens and one mask
token per target patch, at the target's position, and predicts the EMA target encoder's features of the whole
crop there; the loss is the mean squared error over targets, levels and global crops. bf16 autocast on CUDA.
Prints loss, images/s and how long each step waited for its batch.

No step waits for the GPU: the masks' patch indices have a fixed length per crop and level
(``gen.max_patches``, known before the first batch) with padding left out of attention and of the loss, where
I-JEPA's collator cuts every mask to the batch's smallest count (a read-back on the GPU); the loss is read back
every ``--log-every`` steps only.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (announce, autocast, batches, data_folder, ema_update, encode, loader_overrides, parser,  # noqa: E402
                    patch_tokens, run_blocks, vit, StepLog)

from dali_multicrop import DaliMultiCropLoader, MultiCropMaskGenerator  # noqa: E402


class Predictor(torch.nn.Module):
    """I-JEPA's predictor: narrow blocks over context tokens and positional mask tokens."""

    def __init__(self, embed_dim: int, max_patches: int, width: int = 96, depth: int = 2, heads: int = 2) -> None:
        super().__init__()
        from timm.models.vision_transformer import Block

        self.embed = torch.nn.Linear(embed_dim, width)
        self.mask_token = torch.nn.Parameter(torch.zeros(1, 1, width))
        self.position = torch.nn.Parameter(torch.randn(1, max_patches, width) * 0.02)
        self.blocks = torch.nn.Sequential(*[Block(width, heads) for _ in range(depth)])
        self.norm = torch.nn.LayerNorm(width)
        self.out = torch.nn.Linear(width, embed_dim)

    def forward(self, context: torch.Tensor, context_idx: torch.Tensor, target_idx: torch.Tensor,
                extra: Optional[torch.Tensor], keep: torch.Tensor, target_keep: torch.Tensor) -> torch.Tensor:
        """``context`` ``[B, K, D]`` encoded tokens at positions ``context_idx`` ``[B, K]`` of the crop's grid,
        ``extra`` ``[B, E, D]`` encoded tokens of other crops (their positions are in them), ``target_idx``
        ``[B, T]``: predictions ``[B, T, D]`` of the target encoder's features there. ``keep`` ``[B, K + E]`` and
        ``target_keep`` ``[B, T]`` (bool): the real tokens; padding takes no part in attention."""
        parts = [self.embed(context) + self.position[0, context_idx]]
        if extra is not None and extra.shape[1]:
            parts.append(self.embed(extra))
        parts.append(self.mask_token + self.position[0, target_idx])
        x = run_blocks(self.blocks, torch.cat(parts, dim=1), torch.cat([keep, target_keep], dim=1), self.norm)
        return self.out(x[:, -target_idx.shape[1]:])


def gather(tokens: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return tokens.gather(1, idx[..., None].expand(-1, -1, tokens.shape[-1]))


def main(argv: Optional[Sequence[str]] = None) -> list[float]:
    args = parser(__doc__.splitlines()[0], "multicrop_training.yaml").parse_args(argv)
    torch.manual_seed(args.seed)
    loader = DaliMultiCropLoader.from_config(args.config, source=data_folder(args.data), **loader_overrides(args))
    crops = {"crops": args.crops} if args.crops else {}
    gen = MultiCropMaskGenerator.from_config(args.config, seed=args.seed, **crops)
    device = loader.torch_device
    spec, patch = loader.spec, gen.patch_size
    encoder = vit(args.arch, spec.sizes[0], patch).to(device)
    target = copy.deepcopy(encoder).requires_grad_(False)
    predictor = Predictor(encoder.embed_dim, (max(spec.sizes) // patch) ** 2).to(device)
    params = list(encoder.parameters()) + list(predictor.parameters())
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.04,
                                  fused=True)  # fused: its step counts stay on the device, no read-back per step
    log = StepLog(args.log_every, args.steps, device, args.arch)
    announce(device, args.arch, args.steps)
    for step, epoch, batch, waited in batches(loader, args.steps):
        if gen.epoch != epoch:
            gen.set_epoch(epoch)
        masks = gen(batch)
        with autocast(device):
            with torch.no_grad():  # the target: features of the whole crop, layer-normed as in I-JEPA
                wanted = [F.layer_norm(encode(target, patch_tokens(target, batch.crops[i])), (encoder.embed_dim,))
                          for i in gen.masked]
            extra = {i: [patch_tokens(encoder, batch.crops[j]) for j in masks.extra_context[i]] for i in gen.masked}
            losses = []
            for k, i in enumerate(gen.masked):
                tokens = patch_tokens(encoder, batch.crops[i])
                for level in range(gen.num_levels):
                    # fixed lengths, padding marked: nothing is read back from the GPU (see the module)
                    ctx_idx, ctx_real = masks.indices(masks.context[i][level], "pad",
                                                      num=gen.max_patches(i, "context", level))
                    context = torch.cat([gather(tokens, ctx_idx), *extra[i]], dim=1)
                    real = torch.cat([ctx_real, *(torch.ones(e.shape[:2], dtype=torch.bool, device=device)
                                                  for e in extra[i])], dim=1)
                    encoded = encode(encoder, context, real)
                    own, others = encoded[:, :ctx_idx.shape[1]], encoded[:, ctx_idx.shape[1]:]
                    for t in range(gen.num_targets):
                        tgt_idx, tgt_real = masks.indices(masks.targets[i][level][:, t], "pad",
                                                          num=gen.max_patches(i, "target", level))
                        predicted = predictor(own, ctx_idx, tgt_idx, others, real, tgt_real)
                        error = (predicted.float() - gather(wanted[k], tgt_idx).float()).pow(2).mean(-1)  # [B, T]
                        losses.append((error * tgt_real).sum() / tgt_real.sum().clamp_min(1))
            loss = torch.stack(losses).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ema_update(target, encoder, 0.996)
        log.step(step, loss, batch.batch_size, waited)
    log.summary()
    print(f"loader: {loader.stats}", flush=True)  # its side of the loop: waits, steps, img/s
    return log.losses


if __name__ == "__main__":
    main()
