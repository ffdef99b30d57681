"""torchvision's operations on PIL images, value for value, as plain compiled arithmetic both graphs share:
Pillow's two-pass resampling (``pil_resize.py``), its colour arithmetic per pixel (``pil_colour.py``) and a crop
through its colour row one operation at a time (``crop_colour.py``). No DALI here."""
