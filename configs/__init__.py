"""Training configs (YAML), installed as ``dali_multicrop.configs``: load one by name, e.g.
``DaliMultiCropLoader.from_config("multicrop_training")``; ``dali-multicrop config --list`` lists them.
"""
