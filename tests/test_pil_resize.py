"""The CPU graph's resize is Pillow's, value for value (issue #29): dali_multicrop.pixels.pil_resize against the
installed Pillow over both filters, shrinking and enlarging, torchvision's crop-then-resize and Pillow's box, both pass
orders; and the CPU graph's crop operator (DALI numba_function) against the same functions."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dali_multicrop.pixels.pil_resize import (BICUBIC, BILINEAR, HORIZONTAL_FIRST, PILLOW_13, pillow_rule, resized_crop,
                                       vertical_first, weights)

_PIL_FILTER = {BILINEAR: Image.BILINEAR, BICUBIC: Image.BICUBIC}


@pytest.fixture(scope="module")
def images():
    """A noise image (every neighbour unrelated: the hardest case for rounding) and a smooth one."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (157, 211, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:157, 0:211]
    smooth = np.stack([(xx * 255 // 210), (yy * 255 // 156), ((xx + yy) * 255 // 366)], axis=-1).astype(np.uint8)
    return [noise, smooth]


def _cases(rng, count, height, width):
    for t in range(count):
        w, h = int(rng.integers(1, width + 1)), int(rng.integers(1, height + 1))
        x0, y0 = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        side = int(rng.choice([1, 7, 32, 96, 150, 240]))
        yield t % 2, (x0, y0, w, h), side


def test_crop_then_resize_is_pillows_value_for_value(images):
    """torchvision's RandomResizedCrop on a PIL image: crop (whole pixels), then resize; mirrored = flipped after."""
    rng = np.random.default_rng(1)
    rule, orders = pillow_rule(), set()
    for image in images:
        pil = Image.fromarray(image)
        for kind, (x0, y0, w, h), side in _cases(rng, 120, *image.shape[:2]):
            want = np.asarray(pil.crop((x0, y0, x0 + w, y0 + h)).resize((side, side), _PIL_FILTER[kind]))
            out = np.empty((side, side, 3), dtype=np.uint8)
            resized_crop(out, image, float(y0), float(x0), float(y0 + h), float(x0 + w), kind, True, False, rule)
            np.testing.assert_array_equal(out, want, err_msg=f"{(x0, y0, w, h)} -> {side}, filter {kind}")
            resized_crop(out, image, float(y0), float(x0), float(y0 + h), float(x0 + w), kind, True, True, rule)
            np.testing.assert_array_equal(out, want[:, ::-1])
            orders.add(vertical_first(h, w, side, side, rule))
    assert orders == ({True, False} if rule == PILLOW_13 else {False})  # both pass orders were checked


def test_a_box_of_the_whole_image_is_pillows_box(images):
    """An evaluation window: the whole image resized with the window as Pillow's box (fractional pixels), which is
    Resize(R) then CenterCrop(S): the filter reaches past the window, up to the image's edges."""
    rng = np.random.default_rng(2)
    image = images[0]
    pil = Image.fromarray(image)
    height, width = image.shape[:2]
    for t in range(80):
        w, h = rng.uniform(5, width), rng.uniform(5, height)
        x0, y0 = rng.uniform(0, width - w), rng.uniform(0, height - h)
        side, kind = int(rng.choice([16, 64, 224])), t % 2
        want = np.asarray(pil.resize((side, side), _PIL_FILTER[kind], box=(x0, y0, x0 + w, y0 + h)))
        out = np.empty((side, side, 3), dtype=np.uint8)
        resized_crop(out, image, y0, x0, y0 + h, x0 + w, kind, False, False, pillow_rule())
        np.testing.assert_array_equal(out, want)


def test_before_pillow_13_the_horizontal_pass_always_came_first(images):
    """The older order, as a chain of single-axis resizes (each one pass) reproduces it: width, then height."""
    image = images[0]
    pil = Image.fromarray(image)
    for kind, (h, w, side) in [(BILINEAR, (150, 40, 32)), (BICUBIC, (157, 100, 20)), (BILINEAR, (60, 200, 30))]:
        crop = pil.crop((0, 0, w, h))
        want = np.asarray(crop.resize((side, h), _PIL_FILTER[kind]).resize((side, side), _PIL_FILTER[kind]))
        out = np.empty((side, side, 3), dtype=np.uint8)
        resized_crop(out, image, 0.0, 0.0, float(h), float(w), kind, True, False, HORIZONTAL_FIRST)
        np.testing.assert_array_equal(out, want)
    assert vertical_first(150, 40, 32, 32, PILLOW_13) and not vertical_first(150, 40, 32, 32, HORIZONTAL_FIRST)
    assert not vertical_first(60, 200, 30, 30, PILLOW_13)


def test_the_weights_are_pillows():
    """A 2x shrink with the bilinear filter: each output pixel reads 4 source pixels, weights 1/8 3/8 3/8 1/8 of
    2**22 (rounded), cut at the edges and renormalised there."""
    bounds, fixed = weights(8, 0.0, 8.0, 4, BILINEAR)
    assert bounds.tolist() == [[0, 3], [1, 4], [3, 4], [5, 3]]
    assert fixed[1].tolist() == [1 << 19, 3 << 19, 3 << 19, 1 << 19, 0]
    assert abs(int(fixed[0, :3].sum()) - (1 << 22)) <= 1


def test_the_cpu_crop_operator_resizes_and_colours_as_the_functions_do(images):
    """The DALI operator over a batch of windows, sizes and colour rows (one mirrored, one evaluation box): its
    crops are resized_crop's then colour_in_place's."""
    from nvidia.dali import fn, pipeline_def, types

    from dali_multicrop.graph.cpu_crop import NO_COLOUR, crop_node
    from dali_multicrop.pixels.crop_colour import colour_in_place
    from dali_multicrop.pixels.pil_colour import colour_row

    image = images[0]
    windows = [np.float32([[10, 20], [110, 180]]), np.float32([[0, 200], [157, 3]]), np.float32([[5, 5], [60, 61]])]
    rows = [colour_row(np.float32([1.2, 0.7, 1.1]), np.array([3, 1, 0, 2]), 9, False), NO_COLOUR,
            colour_row(np.float32([1, 1, 0.5]), np.arange(4), -1, True)]

    @pipeline_def(batch_size=3, num_threads=2, device_id=None)
    def crops():
        img = fn.external_source(source=lambda: [image] * 3, batch=True, layout="HWC")
        start = fn.external_source(source=lambda: [w[0] for w in windows], batch=True)
        end = fn.external_source(source=lambda: [w[1] for w in windows], batch=True)
        row = fn.external_source(source=lambda: rows, batch=True)
        return (crop_node(img, start, end, row, 48, "bicubic"), crop_node(img, start, end, None, 20, "bilinear"),
                crop_node(img, start, end, row, 32, "bilinear", cut=False))

    pipe = crops()
    pipe.build()
    outs = pipe.run()
    rule = pillow_rule()
    for k, (side, kind, cut, coloured) in enumerate([(48, BICUBIC, True, True), (20, BILINEAR, True, False),
                                                     (32, BILINEAR, False, True)]):
        assert outs[k].layout() == "HWC"
        for i, ((y0, x0), (y1, x1)) in enumerate(windows):
            want = np.empty((side, side, 3), dtype=np.uint8)
            mirror = x0 > x1
            resized_crop(want, image, float(y0), float(min(x0, x1)), float(y1), float(max(x0, x1)), kind, cut,
                         mirror, rule)
            if coloured:
                colour_in_place(want, rows[i])
            np.testing.assert_array_equal(np.asarray(outs[k][i]), want, err_msg=f"output {k}, sample {i}")
    del pipe
