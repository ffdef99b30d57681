"""DINO's multi-crop augmentation as its code composes it (``main_dino.py::DataAugmentationDINO`` with
``utils.GaussianBlur`` and ``utils.Solarization``), written here from that code's description as the reference the
loader's crops are compared with in distribution: torchvision's transforms on PIL images, Python's ``random`` for the
blur and solarisation coins, PIL's own Gaussian blur (``ImageFilter.GaussianBlur(radius)``). Crops come out as PIL
images (DINO's ``ToTensor`` and ``Normalize`` left out: the comparison reads code values)."""

from __future__ import annotations

import random

from PIL import Image, ImageFilter, ImageOps
from torchvision import transforms


class PilBlur:
    """With probability ``p`` (``random.random() <= p``), PIL's Gaussian blur of radius uniform in [0.1, 2]."""

    def __init__(self, p: float) -> None:
        self.p = p

    def __call__(self, image: Image.Image) -> Image.Image:
        if random.random() > self.p:
            return image
        return image.filter(ImageFilter.GaussianBlur(radius=random.uniform(0.1, 2.0)))


class PilSolarize:
    """With probability ``p``, PIL's solarisation (values at or above 128 inverted)."""

    def __init__(self, p: float) -> None:
        self.p = p

    def __call__(self, image: Image.Image) -> Image.Image:
        return ImageOps.solarize(image) if random.random() < self.p else image


def dino_augmentation(global_scale=(0.4, 1.0), local_scale=(0.05, 0.4), locals_=8, jitter_probability=0.8):
    """A callable: a PIL image to DINO's ``2 + locals_`` crops (PIL images), in its order (``jitter_probability``:
    DINO's 0.8 unless a test changes it)."""
    flip_and_jitter = transforms.Compose([
        transforms.RandomHorizontalFlip(p=0.5),
        transforms.RandomApply([transforms.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)],
                               p=jitter_probability),
        transforms.RandomGrayscale(p=0.2),
    ])
    bicubic = transforms.InterpolationMode.BICUBIC
    first = transforms.Compose([transforms.RandomResizedCrop(224, scale=global_scale, interpolation=bicubic),
                                flip_and_jitter, PilBlur(1.0)])
    second = transforms.Compose([transforms.RandomResizedCrop(224, scale=global_scale, interpolation=bicubic),
                                 flip_and_jitter, PilBlur(0.1), PilSolarize(0.2)])
    local = transforms.Compose([transforms.RandomResizedCrop(96, scale=local_scale, interpolation=bicubic),
                                flip_and_jitter, PilBlur(0.5)])
    return lambda image: [first(image), second(image)] + [local(image) for _ in range(locals_)]
