"""Training: precision choice, the loop (AMP, DDP, accumulation, checkpoints), and fitting a Dataset.

``train_model`` trains any ``nn.Module`` on tensors; ``fit`` goes from a Dataset to a trained,
scored model; ``compare_precisions`` is the precision experiment. Registering the result is the
registry's job (:func:`amploop.train_version`).

Names are imported on first use (PEP 562): ``python -m amploop.train.distributed``, the torchrun
agent, must not find its own module already imported by this package.
"""

from __future__ import annotations

from amploop._lazy import lazy_exports

_EXPORTS = {
    "Checkpoint": "amploop.train.checkpoint",
    "CheckpointManager": "amploop.train.checkpoint",
    "DistributedContext": "amploop.train.distributed",
    "FitResult": "amploop.train.fit",
    "PrecisionChoice": "amploop.train.precision",
    "PrecisionComparison": "amploop.train.compare",
    "PrecisionRow": "amploop.train.compare",
    "ThroughputMeter": "amploop.train.throughput",
    "ThroughputReport": "amploop.train.throughput",
    "TrainData": "amploop.train.tensors",
    "TrainResult": "amploop.train.loop",
    "TrainState": "amploop.train.state",
    "bundle_from_fit": "amploop.train.fit",
    "compare_precisions": "amploop.train.compare",
    "evaluate_loss": "amploop.train.objective",
    "fit": "amploop.train.fit",
    "launch_torchrun": "amploop.train.distributed",
    "loss_function": "amploop.train.objective",
    "model_logits": "amploop.train.fit",
    "resolve_precision": "amploop.train.precision",
    "setup_distributed": "amploop.train.distributed",
    "teardown_distributed": "amploop.train.distributed",
    "to_tensors": "amploop.train.tensors",
    "train_model": "amploop.train.loop",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
