"""The DALI graph: read, decode once, the crop step (:mod:`dali_multicrop.step`), then each crop's pixel work, one
builder for ``"gpu"`` and ``"cpu"`` (``builder.py``). ``augment.py``: the per-crop operations, each written once and
parameterised by device; ``cpu_crop.py``: the CPU graph's crop operator (Pillow's resize and torchvision's colour in
one compiled call); ``gpu_colour.py``: the GPU graph's colour kernels (CUDA, through Numba); ``executor.py``: DALI's
executor settings."""
