"""How close the crops are to the method's own transform: per operation against torchvision on PIL images
(``table.py``, ``dali-multicrop fidelity``) and in distribution against the method's own code (``distribution.py``,
Kolmogorov-Smirnov distances of per-crop statistics)."""
