"""Bad samples: finding them, naming them and what the loader does with them, one module per step.

==================  =======================================================================================
module              what it does
==================  =======================================================================================
``diagnose.py``     names what is wrong with one image (missing, empty, not an image, a format DALI does not
                    read, undecodable): the errors :class:`~dali_multicrop.ImageReadError` and
                    :class:`~dali_multicrop.ImageDecodeError`
``validation.py``   decodes files once, alone, in worker processes (``validate=True``; a crash costs a worker)
``scan.py``         ``dali-multicrop check-data``: a whole dataset scanned ahead of a run (:func:`check_files`)
``policy.py``       the loader's one owner of bad samples: those known, ``on_error`` ("raise" or "skip"), the
                    search for the file behind a failed DALI run
==================  =======================================================================================

Nothing is imported here: each module is imported where it is used (the worker processes import
``validation`` alone, without torch).
"""
