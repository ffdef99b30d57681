"""What to crop: the crop spec (groups, sizes, scales, colour jitter: ``spec.py``), the shipped and user recipes
(``presets.py``), the training configs that name a recipe and the loader's and masks' arguments (``config.py``) and
schedules that change the crops between epochs (``curriculum.py``). Plain Python and YAML: no DALI, torch or Numba."""
