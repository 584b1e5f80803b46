"""From a Dataset to a trained model: split, encode, build the architecture, train, score.

This is the step ``amploop train`` runs. ``amploop.data`` (pandas) is imported inside the
functions, so ``import amploop.train`` needs only torch and numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from amploop.config import AmploopConfig
from amploop.errors import ConfigError, DataError
from amploop.models.bundle import ModelBundle
from amploop.models.runtime import model_outputs
from amploop.models.zoo import CUSTOM_ARCHITECTURE, IMAGE_ARCHITECTURES, TABLE_ARCHITECTURES, ModelSpec, build_model
from amploop.train.distributed import DistributedContext
from amploop.train.loop import TrainResult, train_model
from amploop.train.objective import evaluate_loss
from amploop.train.tensors import TrainData, to_tensors

if TYPE_CHECKING:
    from amploop.data import Dataset, FeatureEncoder, LabelEncoder
    from amploop.data.splits import SplitPlan

__all__ = ["FitResult", "bundle_from_fit", "fit", "model_logits"]


@dataclass(frozen=True)
class FitResult:
    train_result: TrainResult
    architecture: str
    options: dict[str, Any]
    spec: ModelSpec
    encoder: FeatureEncoder
    labels: LabelEncoder | None
    target: str
    task: str
    splits: SplitPlan
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def model(self) -> nn.Module:
        return self.train_result.model


def _check_missing_numeric(dataset: Dataset, impute: bool) -> None:
    numeric = [c.name for c in dataset.schema.columns if c.kind == "numeric" and c.name != dataset.target]
    with_nan = [c for c in numeric if dataset.table[c].isna().any()]
    if with_nan and not impute:
        raise DataError(
            f"missing (NaN) values in numeric feature columns: {', '.join(with_nan)}; clean them, or set "
            "data.impute_missing: true to fill them with the training mean",
            columns=with_nan,
        )
    if dataset.target is not None and dataset.labels.isna().any():
        raise DataError(
            f"the target column '{dataset.target}' has {int(dataset.labels.isna().sum())} "
            "missing values; drop those rows"
        )


def fit(
    dataset: Dataset,
    config: AmploopConfig | None = None,
    *,
    model: nn.Module | None = None,
    ctx: DistributedContext | None = None,
    exclude: np.ndarray | None = None,
    checkpoint_dir: str | None = None,
    resume: bool = False,
    progress: bool = False,
) -> FitResult:
    """Train ``config.model.architecture`` (or the user's own ``model``) on ``dataset``; score it on the test rows.

    ``config`` is the whole of ``amploop.yaml`` (its ``data``, ``model`` and ``train`` sections are
    used; defaults when ``None``). A user's ``model`` is any ``nn.Module`` that takes the dict of
    inputs (``numeric``, ``categorical``, ``image``) and returns one row of outputs per sample;
    it is recorded as the ``custom`` architecture. ``exclude`` lists row positions kept out of
    training and validation (e.g. suspicious rows).
    """
    from amploop.data import FeatureEncoder, LabelEncoder
    from amploop.data.splits import prepare_splits

    config = config or AmploopConfig()
    architecture, settings = config.model.architecture, config.train
    if dataset.target is None:
        raise DataError(f"dataset '{dataset.name}' has no target column; pass --target")
    has_images = bool(dataset.arrays)
    if model is None:
        if has_images and architecture in TABLE_ARCHITECTURES:
            raise ConfigError(f"'{architecture}' is for tables but '{dataset.name}' holds images; use cnn or resnet")
        if not has_images and architecture in IMAGE_ARCHITECTURES:
            raise ConfigError(f"'{architecture}' is for images but '{dataset.name}' is a table; use mlp or tabular")
    _check_missing_numeric(dataset, config.data.impute_missing)
    task = dataset.task or "classification"
    plan = prepare_splits(
        dataset,
        validation_fraction=config.data.validation_fraction,
        test_fraction=config.data.test_fraction,
        seed=config.data.split_seed,
        exclude=exclude,
    )
    encoder = FeatureEncoder(exclude=[dataset.target]).fit(
        plan.train.table, plan.train.arrays, schema=plan.train.schema
    )
    labels = LabelEncoder().fit(dataset.labels) if task == "classification" else None
    train_data, val_data, test_data = (to_tensors(d, encoder, labels) for d in (plan.train, plan.validation, plan.test))
    spec = ModelSpec(
        n_numeric=len(encoder.numeric_columns_),
        cardinalities=tuple(encoder.cardinalities_),
        image_shape=tuple(encoder.image_shapes_[encoder.image_columns_[0]]) if encoder.image_columns_ else None,
        n_outputs=len(labels.classes_) if labels is not None else 1,
    )
    torch.manual_seed(settings.seed)
    net = model if model is not None else build_model(architecture, spec, config.model.options)
    result = train_model(
        net,
        train_data,
        val_data,
        settings,
        task=task,
        ctx=ctx,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        progress=progress,
    )
    test_loss, test_metric = evaluate_loss(result.model, test_data, task, result.precision)
    val_loss, val_metric = evaluate_loss(result.model, val_data, task, result.precision)
    metrics = {"test_loss": test_loss, "validation_loss": val_loss}
    if task == "classification":
        metrics.update(test_accuracy=test_metric, validation_accuracy=val_metric)
    else:
        metrics.update(test_rmse=-test_metric, validation_rmse=-val_metric)
    return FitResult(
        train_result=result,
        architecture=architecture if model is None else CUSTOM_ARCHITECTURE,
        options=dict(config.model.options) if model is None else {"class": _qualified_name(model)},
        spec=spec,
        encoder=encoder,
        labels=labels,
        target=dataset.target,
        task=task,
        splits=plan,
        metrics=metrics,
    )


def bundle_from_fit(result: FitResult) -> ModelBundle:
    """The files a registry stores for this trained model."""
    schema = result.splits.train.schema.without(result.target)
    return ModelBundle(
        architecture=result.architecture,
        options=result.options,
        spec=result.spec,
        task=result.task,
        target=result.target,
        classes=result.labels.classes_ if result.labels is not None else None,
        schema=schema.to_dict(),
        encoder_json=result.encoder.to_json(),
        weights=dict(result.model.state_dict()),
        trained_precision=result.train_result.precision.mode,
    )


def model_logits(model: nn.Module, data: TrainData, precision: Any, batch_size: int = 1024) -> np.ndarray:
    """Logits of ``model`` on every row of ``data`` (float32, on the CPU), under ``precision``'s autocast."""
    return model_outputs(model, data.inputs, batch_size=batch_size, autocast=precision.autocast).numpy()


def _qualified_name(model: nn.Module) -> str:
    kind = type(model)
    return f"{kind.__module__}.{kind.__qualname__}"
