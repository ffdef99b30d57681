"""The loader (``loader.py``: :class:`DaliMultiCropLoader`) and what it runs per epoch: the rank's batches
(``epochs.py``), the feed of paths and stream keys into the graph (``feed.py``), the pipeline and its iterator
(``runner.py``), the batch handed to training (``batch.py``), its one copy to the device (``transfer.py``) and the
loop's timings (``stats.py``)."""
