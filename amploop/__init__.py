"""amploop: train, evaluate, register, serve, watch and retrain deep-learning models.

The public names below are imported on first use (PEP 562), so ``import amploop.train`` on a
machine with only torch and numpy does not pull in the database and web stack.

>>> import amploop
>>> amploop.load_builtin("mnist5k").n_rows
5000

The stages, each a function that takes plain inputs and returns a typed result with
``to_dict()`` (what ``--json`` prints): :func:`check_quality`, :func:`train_version`,
:func:`evaluate_version`, :func:`promote`, :func:`rollback`, :func:`write_model_card` and
:func:`load_model` (a :class:`Predictor` for ``NAME``, ``NAME:VERSION`` or ``NAME@ALIAS``),
:func:`predict_file` (batch scoring of a CSV or Parquet file), :func:`create_api_key`,
:func:`monitor_model` (windows of the prediction log compared with the training rows),
:func:`drift_files` (two files compared column by column) and :func:`run_ci` (data check →
train → evaluate → gate in one call, what ``amploop ci`` runs); the prediction server is
:func:`amploop.serve.serve`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from amploop._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    # errors
    "AmploopError": "amploop.errors",
    "ArtifactError": "amploop.errors",
    "AuthError": "amploop.errors",
    "ConfigError": "amploop.errors",
    "Conflict": "amploop.errors",
    "DataError": "amploop.errors",
    "DatasetNotFound": "amploop.errors",
    "GateFailed": "amploop.errors",
    "InputTooLarge": "amploop.errors",
    "ModelNotFound": "amploop.errors",
    "NotFound": "amploop.errors",
    "PermissionDenied": "amploop.errors",
    "QualityError": "amploop.errors",
    "SchemaError": "amploop.errors",
    "StoreError": "amploop.errors",
    "TrainingError": "amploop.errors",
    "Unavailable": "amploop.errors",
    "UsageError": "amploop.errors",
    # configuration and workspace
    "AmploopConfig": "amploop.config",
    "DataConfig": "amploop.config",
    "EvaluateConfig": "amploop.config",
    "ModelConfig": "amploop.config",
    "TrainConfig": "amploop.config",
    "load_config": "amploop.config",
    "Workspace": "amploop.workspace",
    # data
    "Dataset": "amploop.data",
    "Schema": "amploop.data",
    "FeatureEncoder": "amploop.data",
    "LabelEncoder": "amploop.data",
    "builtin_names": "amploop.data",
    "fingerprint": "amploop.data",
    "from_numpy": "amploop.data",
    "infer_schema": "amploop.data",
    "load_builtin": "amploop.data",
    "open_dataset": "amploop.data",
    "QualityReport": "amploop.data.quality",
    "check_quality": "amploop.data.quality",
    # models
    "Predictor": "amploop.models.runtime",
    # registry
    "ArtifactStore": "amploop.registry",
    "Store": "amploop.registry",
    # the stages, as the CLI, the server and the loop call them
    "TrainOutcome": "amploop.registry.training",
    "train_version": "amploop.registry.training",
    "EvaluationOutcome": "amploop.registry.evaluations",
    "evaluate_version": "amploop.registry.evaluations",
    "AliasMove": "amploop.registry.aliases",
    "promote": "amploop.registry.aliases",
    "rollback": "amploop.registry.aliases",
    "ModelCard": "amploop.registry.cards",
    "write_model_card": "amploop.registry.cards",
    "load_model": "amploop.registry.loading",
    "PredictFileResult": "amploop.serve.predict",
    "predict_file": "amploop.serve.predict",
    "CreatedKey": "amploop.serve.auth",
    "create_api_key": "amploop.serve.auth",
    "ServeConfig": "amploop.config",
    "MonitorConfig": "amploop.config",
    "DriftReport": "amploop.monitor.windows",
    "MonitorResult": "amploop.monitor.windows",
    "monitor_model": "amploop.monitor.windows",
    "FileDriftReport": "amploop.monitor.files",
    "drift_files": "amploop.monitor.files",
    "CiResult": "amploop.loop.ci",
    "run_ci": "amploop.loop.ci",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from amploop.config import (
        AmploopConfig,
        DataConfig,
        EvaluateConfig,
        ModelConfig,
        MonitorConfig,
        ServeConfig,
        TrainConfig,
        load_config,
    )
    from amploop.data import (
        Dataset,
        FeatureEncoder,
        LabelEncoder,
        Schema,
        builtin_names,
        fingerprint,
        from_numpy,
        infer_schema,
        load_builtin,
        open_dataset,
    )
    from amploop.data.quality import QualityReport, check_quality
    from amploop.errors import (
        AmploopError,
        ArtifactError,
        AuthError,
        ConfigError,
        Conflict,
        DataError,
        DatasetNotFound,
        GateFailed,
        InputTooLarge,
        ModelNotFound,
        NotFound,
        PermissionDenied,
        QualityError,
        SchemaError,
        StoreError,
        TrainingError,
        Unavailable,
        UsageError,
    )
    from amploop.loop.ci import CiResult, run_ci
    from amploop.models.runtime import Predictor
    from amploop.monitor.files import FileDriftReport, drift_files
    from amploop.monitor.windows import DriftReport, MonitorResult, monitor_model
    from amploop.registry import ArtifactStore, Store
    from amploop.registry.aliases import AliasMove, promote, rollback
    from amploop.registry.cards import ModelCard, write_model_card
    from amploop.registry.evaluations import EvaluationOutcome, evaluate_version
    from amploop.registry.loading import load_model
    from amploop.registry.training import TrainOutcome, train_version
    from amploop.serve.auth import CreatedKey, create_api_key
    from amploop.serve.predict import PredictFileResult, predict_file
    from amploop.workspace import Workspace
