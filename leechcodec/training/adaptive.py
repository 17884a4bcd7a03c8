"""Training batches that keep the tokens the default encoder keeps (``--keep-draw allocator``).

The default encoder gives every latent position its own token count (``leechcodec.allocation``: the tokens go where
they remove the most latent error for their static-prior cost), while the quality-level draw keeps the same prefix
everywhere. Here each sample's counts are the allocation's for the quality level the loop drew for it, priced with the
static and gain priors of the shipped model the run starts from, and with the allocation weights its registry entry
holds (``LoadedModel.allocation_weights``), so the decoder learns on the patterns of real files.

Invariant: the run's analysis transform is frozen (``--freeze-analysis``, running statistics included), so the tokens
are bit for bit those of the model the priors came from, and its static, gain and conditional priors stay exact for
the fine-tuned decoder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from leechcodec import allocation
from leechcodec.entropy import StaticPrior
from leechcodec.gains import GainPrior
from leechcodec.model import LeechAutoencoder
from leechcodec.training import TrainingError


class AllocatorCounts:
    """The allocation's per-position token counts for training samples, under fixed static and gain priors."""

    def __init__(self, prior: StaticPrior, gain_prior: GainPrior, weights: torch.Tensor | None = None,
                 weights_of: str | None = None):
        self.prior, self.gain_prior = prior, gain_prior
        self.weights, self.weights_of = weights, weights_of  # the allocation weights, and the model they came from

    @classmethod
    def of_weights_file(cls, path: Path | None) -> AllocatorCounts:
        """The priors of a shipped gain–shape weights file (the run's ``--init-from``), and the allocation weights
        of the registered model whose file it is (none when no registry entry names the file or holds weights)."""
        from leechcodec.zoo import ModelError, load_model, load_weights_file, registry

        if path is None:
            raise TrainingError("--keep-draw allocator needs --init-from a shipped weights file (its priors price "
                                "the tokens)")
        path = Path(path)
        try:
            registered = next((model_id for model_id, entry in registry()["models"].items()
                               if entry.get("file") == path.name), None)
        except ModelError:
            registered = None
        try:  # a registered file loads with its registry entry (its allocation weights); the name holds the hash
            model = load_model(registered) if registered else load_weights_file(path)
        except ModelError as e:
            raise TrainingError(f"--keep-draw allocator needs --init-from a shipped weights file: {e}") from None
        if model.gains is None:
            raise TrainingError(f"--keep-draw allocator needs a gain–shape model; {path.name} has no gain levels")
        weights = model.allocation_weights
        return cls(model.prior, model.gains, weights, registered if weights is not None else None)

    def counts(self, indices: np.ndarray, gain_symbols: np.ndarray, errors: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """All G tokens [B, G, h, w] (indices, gain symbols), the latent error of every prefix [B, G+1, h, w] and
        the tokens kept per sample at its quality level [B] → counts [B, h, w] int64: per sample, the encoder's
        adaptive allocation at the static cost of k uniform tokens (``encoder.encode_image``)."""
        out = []
        for b, k in enumerate(keep):
            costs = allocation.prefix_costs(self.prior, self.gain_prior, indices[b], gain_symbols[b])
            out.append(allocation.allocate(errors[b], costs, costs[int(k)].sum()))
        return np.stack(out)

    def forward(self, model: LeechAutoencoder, x: torch.Tensor, keep: torch.Tensor) -> dict:
        """The training pass under allocated counts: x [B, 3, H, W], keep [B] (tokens of each sample's quality
        level) → the model's outputs (as ``LeechAutoencoder.forward``) and the counts [B, h, w]. Only the synthesis
        gets gradients."""
        with torch.no_grad():
            y = model.analysis(x)
            indices, gain_symbols, vectors = model.quantize_stages(y, model.cfg.groups)
            errors = model.prefix_errors(y, vectors, self.weights)
            counts = self.counts(indices.cpu().numpy(), gain_symbols.cpu().numpy(), errors.cpu().numpy(),
                                 keep.cpu().numpy())
            counts = torch.from_numpy(counts).to(x.device)
            y_hat = model.assemble(vectors * model.group_mask(counts))
        return {"x_hat": model.synthesis(y_hat), "indices": indices, "gain_symbols": gain_symbols, "y": y,
                "counts": counts}
