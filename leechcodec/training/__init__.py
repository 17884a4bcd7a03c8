"""Training the codec's models: the library behind bin/train.py, bin/export_model.py and bin/train_context.py.

- ``data``: the training photos (../shared/data/train, never Kodak): loading, the name-hashed validation split,
  random crops, the held-out crops as PNGs.
- ``loop``: the training loop (``TrainOptions``, ``train``), its learning-rate schedule, validation, the forward and
  rate terms, and starting a run from other weights (``init_weights``, ``fit_weights``).
- ``export``: freezing a checkpoint into a shipped weights file (prior fitting, float16 kernels, the registry entry,
  the training recipe in its ``meta``).
- ``context_fit``: fitting the conditional prior (entropy model v2) of a shipped model.
- ``calibration``: checking the training rate proxy against the real code entropies.
- ``parts``: splitting a file into parts of bounded size and joining them again (the lent GPU's 16 MiB per file).

The modules import torch and the codec; nothing here is imported by the codec itself.
"""


class TrainingError(ValueError):
    """Options or inputs a training tool cannot run with (another run's checkpoint in ``--out``, weights that do not
    fit the model, a weights file over the size limit, ...): the scripts print it as one line."""
