"""Where :mod:`dali_multicrop.step.draws` was documented first: every random parameter of a batch (``draw_batch``,
``batch_keys``, ``epoch_key``, ...). The crop step's modules live in :mod:`dali_multicrop.step`."""

from .step.draws import *  # noqa: F401,F403
from .step.draws import __all__  # noqa: F401
