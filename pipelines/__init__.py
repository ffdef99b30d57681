"""Declarative multi-crop recipes of well-known methods (YAML), installed as ``dali_multicrop.pipelines``.

Load one with ``dali_multicrop.load_preset("dino")`` or pass its name as ``crops=`` to the loader.
"""
