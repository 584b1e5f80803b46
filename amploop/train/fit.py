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

from amploop.errors import ConfigError, DataError
from amploop.models.runtime import ModelBundle
from amploop.models.zoo import IMAGE_ARCHITECTURES, TABLE_ARCHITECTURES, ModelSpec, build_model
from amploop.train.distributed import DistributedContext
from amploop.train.loop import TrainData, TrainResult, TrainSettings, evaluate_loss, train_model

if TYPE_CHECKING:
    from amploop.data import Dataset, FeatureEncoder, LabelEncoder

__all__ = ["FitResult", "SplitPlan", "bundle_from_fit", "fit", "model_logits", "prepare_splits", "to_tensors"]


@dataclass(frozen=True)
class SplitPlan:
    """The train, validation and test rows, each a derived dataset with its own fingerprint."""

    train: Dataset
    validation: Dataset
    test: Dataset


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


def prepare_splits(
    dataset: Dataset,
    *,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
    exclude: np.ndarray | None = None,
) -> SplitPlan:
    """Use the dataset's own train/test split when it has one; else a seeded random split.

    ``exclude`` (row positions, e.g. suspicious rows) leaves the training and validation rows; the
    test rows stay as they are, so the evaluation still measures the data as it comes.
    """
    rng = np.random.default_rng(seed)
    if "train" in dataset.splits and "test" in dataset.splits:
        train_pos = np.asarray(dataset.splits["train"])
        test_pos = np.asarray(dataset.splits["test"])
    else:
        order = rng.permutation(dataset.n_rows)
        n_test = max(1, int(round(test_fraction * dataset.n_rows)))
        test_pos, train_pos = np.sort(order[:n_test]), np.sort(order[n_test:])
    shuffled = rng.permutation(train_pos)
    n_val = max(1, int(round(validation_fraction * len(shuffled))))
    val_pos, fit_pos = np.sort(shuffled[:n_val]), np.sort(shuffled[n_val:])
    note = ""
    if exclude is not None and len(exclude):
        dropped = np.isin(fit_pos, exclude).sum() + np.isin(val_pos, exclude).sum()
        fit_pos, val_pos = fit_pos[~np.isin(fit_pos, exclude)], val_pos[~np.isin(val_pos, exclude)]
        note = f", without {int(dropped)} suspicious rows"
    return SplitPlan(
        train=dataset.take(fit_pos, name=f"{dataset.name}[train]", transformation=f"training rows (seed {seed}){note}"),
        validation=dataset.take(
            val_pos, name=f"{dataset.name}[validation]", transformation=f"validation rows (seed {seed}){note}"
        ),
        test=dataset.take(test_pos, name=f"{dataset.name}[test]", transformation="held-out test rows"),
    )


def to_tensors(dataset: Dataset, encoder: FeatureEncoder, labels: LabelEncoder | None) -> TrainData:
    batch = encoder.transform(dataset.table, dataset.arrays)
    inputs = {"numeric": torch.from_numpy(batch.numeric), "categorical": torch.from_numpy(batch.categorical)}
    for name, images in batch.images.items():
        inputs["image" if name == encoder.image_columns_[0] else name] = torch.from_numpy(images)
    if labels is not None:
        targets = torch.from_numpy(labels.transform(dataset.labels))
    else:
        targets = torch.from_numpy(dataset.labels.to_numpy(dtype=np.float32))
    return TrainData(inputs=inputs, targets=targets)


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
    *,
    architecture: str,
    settings: TrainSettings,
    options: dict[str, Any] | None = None,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.2,
    impute_missing: bool = False,
    model: nn.Module | None = None,
    ctx: DistributedContext | None = None,
    exclude: np.ndarray | None = None,
) -> FitResult:
    """Train ``architecture`` (or the user's ``model``) on ``dataset`` and score it on the test rows."""
    from amploop.data import FeatureEncoder, LabelEncoder

    if dataset.target is None:
        raise DataError(f"dataset '{dataset.name}' has no target column; pass --target")
    has_images = bool(dataset.arrays)
    if model is None:
        if has_images and architecture in TABLE_ARCHITECTURES:
            raise ConfigError(f"'{architecture}' is for tables but '{dataset.name}' holds images; use cnn or resnet")
        if not has_images and architecture in IMAGE_ARCHITECTURES:
            raise ConfigError(f"'{architecture}' is for images but '{dataset.name}' is a table; use mlp or tabular")
    _check_missing_numeric(dataset, impute_missing)
    task = dataset.task or "classification"
    plan = prepare_splits(
        dataset,
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
        seed=settings.seed,
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
    net = model if model is not None else build_model(architecture, spec, options)
    result = train_model(net, train_data, val_data, settings, task=task, ctx=ctx)
    test_loss, test_metric = evaluate_loss(
        result.model, test_data, task, result.precision, next(result.model.parameters()).device
    )
    val_loss, val_metric = evaluate_loss(
        result.model, val_data, task, result.precision, next(result.model.parameters()).device
    )
    metrics = {"test_loss": test_loss, "validation_loss": val_loss}
    if task == "classification":
        metrics.update(test_accuracy=test_metric, validation_accuracy=val_metric)
    else:
        metrics.update(test_rmse=-test_metric, validation_rmse=-val_metric)
    return FitResult(
        train_result=result,
        architecture=architecture if model is None else type(model).__name__,
        options=dict(options or {}),
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
    device = next(model.parameters()).device
    model.eval()
    outputs = []
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            inputs, _ = data.batch(torch.arange(start, min(start + batch_size, len(data))), device)
            with precision.autocast():
                outputs.append(model(inputs).float().cpu())
    return torch.cat(outputs).numpy()
