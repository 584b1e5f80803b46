"""``amploop.yaml``: the project's settings, validated.

Values are read in three layers, each overriding the one before:

1. the file (``amploop.yaml`` in the working directory, or the path given with ``--config``);
2. environment variables ``AMPLOOP_<SECTION>__<FIELD>`` (two underscores between levels),
   e.g. ``AMPLOOP_TRAIN__EPOCHS=3``; values are parsed as YAML scalars, so ``3`` is a number;
3. command-line flags, passed in as dotted keys (``{"train.epochs": 3}``).

Unknown keys and wrong types are errors that name the field's path and where the value came
from. Variables without a double underscore (``AMPLOOP_HOME``, ``AMPLOOP_DB_URL``, ...) belong to
the workspace, not to this file, and are ignored here.

Examples
--------
>>> cfg = load_config(None, environ={"AMPLOOP_TRAIN__EPOCHS": "3"}, overrides={"train.seed": 7})
>>> cfg.train.epochs, cfg.train.seed, cfg.train.precision
(3, 7, 'auto')
>>> load_config(None, environ={"AMPLOOP_TRAIN__EPOCS": "3"})
Traceback (most recent call last):
...
amploop.errors.ConfigError: train.epocs (from AMPLOOP_TRAIN__EPOCS): unknown key; valid keys here: ...
"""

from __future__ import annotations

import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from amploop.errors import ConfigError
from amploop.names import is_valid_name

__all__ = [
    "AmploopConfig",
    "DataConfig",
    "EvaluateConfig",
    "GateRuleConfig",
    "LoopConfig",
    "LoopTriggersConfig",
    "ModelConfig",
    "MonitorConfig",
    "ProjectConfig",
    "ServeConfig",
    "TrainConfig",
    "load_config",
]

CONFIG_FILE_NAME = "amploop.yaml"
ENV_PREFIX = "AMPLOOP_"
MAX_SEED = 2**31 - 1  # numpy and torch both take it; ranks add their rank to the seed
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d{1,3})?")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class ProjectConfig(_Section):
    name: str = "amploop-project"  # shown in reports, cards and the dashboard
    description: str = ""  # one paragraph on what the model is for
    owner: str = ""  # the person or team answerable for the model
    card: dict[str, str] = Field(default_factory=dict)  # model card text: intended_use, ethical_considerations, ...


class DataConfig(_Section):
    source: str | None = None  # a built-in dataset name (adult, mnist5k, rainfall) or a file path
    target: str | None = None  # the label column; built-in datasets know their own
    slice_columns: list[str] = Field(default_factory=list)  # columns to report metrics by
    validation_fraction: float = Field(0.1, gt=0, lt=1)  # share of training rows held out
    test_fraction: float = Field(0.2, gt=0, lt=1)  # share held out when the data has no test split
    split_seed: int = Field(0, ge=0, le=MAX_SEED)  # seeds the split; train.seed leaves the test rows alone
    datasheet: dict[str, str] = Field(default_factory=dict)  # your text per datasheet section
    impute_missing: bool = False  # fill missing numeric features with the training mean


class ModelConfig(_Section):
    name: str | None = None  # registered model name; defaults to the dataset's name
    architecture: str = "mlp"  # a built-in architecture: mlp, tabular, cnn, resnet, gpt
    options: dict[str, Any] = Field(default_factory=dict)  # architecture keyword arguments

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str | None) -> str | None:
        if value is not None and not is_valid_name(value):
            shown = value if len(value) <= 60 else value[:57] + "..."
            raise ValueError(
                f"{shown!r} is not a valid model name: use letters, digits, '_', '.' and '-', "
                "starting with a letter or digit (at most 128 characters)"
            )
        return value


class TrainConfig(_Section):
    precision: Literal["auto", "fp32", "tf32", "bf16", "fp16"] = "auto"  # numeric precision
    epochs: int | None = Field(None, ge=1)  # passes over the data; null: at least 5, more until min_steps
    min_steps: int = Field(1000, ge=1)  # with epochs null: optimizer steps a small table still gets
    batch_size: int = Field(256, ge=1)  # samples per optimizer step, per process; capped for small tables
    # peak learning rate after warmup; the cap keeps Adam's step (lr / (1 - beta1)) inside float32
    learning_rate: float = Field(1e-3, gt=0, le=1e6)
    weight_decay: float = Field(0.01, ge=0)  # AdamW decoupled weight decay
    seed: int = Field(0, ge=0, le=MAX_SEED)  # seeds data order and initialisation; each rank adds its rank
    gradient_accumulation_steps: int = Field(1, ge=1)  # micro-batches per optimizer step
    max_grad_norm: float | None = Field(1.0, gt=0)  # clip gradients to this norm; null: no clip
    warmup_fraction: float = Field(0.05, ge=0, lt=1)  # share of steps spent warming up
    compile: Literal["auto", "on", "off"] = "auto"  # torch.compile; auto: on CUDA only
    early_stopping_patience: int | None = Field(3, ge=1)  # epochs without a lower validation loss; null: off
    checkpoint_every_steps: int | None = Field(None, ge=1)  # null: only at the end
    nproc_per_node: int = Field(1, ge=1)  # processes per machine (torchrun) for data parallelism
    device: str = "auto"  # auto (CUDA when present), cpu, cuda, cuda:N
    max_steps: int | None = Field(None, ge=1)  # stop after this many optimizer steps
    max_nonfinite_steps: int = Field(5, ge=1)  # non-finite losses in a row before training stops
    channels_last: Literal["auto", "on", "off"] = "auto"  # memory format; auto: conv nets on CUDA
    collective_timeout_s: float = Field(300.0, gt=0)  # how long a DDP collective waits for a lost rank

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not _DEVICE.fullmatch(value):
            raise ValueError(f"unknown device {value[:40]!r}; use auto, cpu, cuda, cuda:N or mps")
        return value


class GateRuleConfig(_Section):
    """One rule of a release gate: ``{metric: accuracy, min: 0.84}`` or ``{metric: ece, max: 0.05}``."""

    metric: str  # a gate metric; an unknown name is an error listing the valid ones
    min: float | None = None  # pass when the value is at least this
    max: float | None = None  # pass when the value is at most this

    @model_validator(mode="after")
    def _one_bound(self) -> GateRuleConfig:
        if (self.min is None) == (self.max is None):
            raise ValueError("give exactly one of min or max")
        return self


class EvaluateConfig(_Section):
    min_slice_size: int = Field(30, ge=1)  # smaller slices are reported as too small
    bootstrap_samples: int = Field(1000, ge=100)  # resamples for confidence intervals
    confidence_level: float = Field(0.95, gt=0, lt=1)  # for the intervals
    gate: list[GateRuleConfig] | None = None  # release gate; null: the default gate
    parity_precisions: list[Literal["bf16", "fp16", "int8"]] = Field(
        default_factory=lambda: ["bf16", "fp16", "int8"]
    )  # served precisions compared with fp32
    robustness: bool = True  # run the corruption suite


class ServeConfig(_Section):
    host: str = "127.0.0.1"  # address the prediction server binds
    port: int = Field(8000, ge=1, le=65535)  # its port
    precision: Literal["auto", "fp32", "bf16", "fp16", "int8"] = "fp32"  # inference precision
    runtime: Literal["torch", "onnx"] = "torch"  # what runs the model (int8 always runs on ONNX Runtime)
    min_precision_agreement: float = Field(0.99, ge=0, le=1)  # a precision must agree this often with fp32
    max_batch_size: int = Field(64, ge=1)  # most rows (not requests) merged into one forward pass
    max_wait_ms: float = Field(5.0, ge=0)  # longest a request waits for others to batch with
    max_queue_rows: int = Field(1024, ge=1)  # rows waiting beyond this get HTTP 503 with Retry-After
    request_timeout_s: float = Field(10.0, gt=0)  # a request not answered by then gets HTTP 503
    max_request_bytes: int = Field(1_000_000, ge=1)  # larger request bodies get HTTP 413
    max_rows_per_request: int = Field(1000, ge=1)  # more records in one request get HTTP 413
    require_key_for_predict: bool = False  # predict needs a reader key too (feedback and admin always need one)
    prediction_log: bool = True  # log each answered request to the store, off the request path
    log_buffer_rows: int = Field(100_000, ge=1)  # requests held for the log; beyond this they are counted as dropped
    alias_poll_s: float = Field(2.0, gt=0)  # how often the server looks whether its alias moved
    drain_s: float = Field(30.0, ge=0)  # on SIGTERM, how long in-flight requests get to finish
    shadow: str | None = None  # a challenger (NAME@ALIAS or NAME:V) that also scores; logged, not returned
    canary: str | None = None  # a version that answers canary_percent of the requests
    canary_percent: float = Field(0.0, ge=0, le=100)  # share of requests the canary answers


class MonitorConfig(_Section):
    window_size: int = Field(1000, ge=10)  # predictions per drift window
    drift_p_value: float = Field(0.01, gt=0, lt=1)  # significance for drift tests
    reference_sample_size: int = Field(5000, ge=100)  # validation outputs kept for prediction-drift tests
    correction: Literal["bh", "bonferroni", "none"] = "bh"  # multiple-testing correction over the columns
    drift_share: float = Field(0.5, gt=0, le=1)  # share of drifted columns that makes the dataset drift
    performance_drop: float = Field(0.05, ge=0, lt=1)  # accuracy this far below the reference raises an alert
    min_labels: int = Field(50, ge=1)  # labelled rows a window needs for realized performance
    webhook_url: str | None = None  # POST alerts here (retried, in the background)
    webhook_timeout_s: float = Field(5.0, gt=0, le=60)  # per attempt


class LoopTriggersConfig(_Section):
    drift_share: float | None = Field(0.5, gt=0, le=1)  # retrain when this share of inputs drifted (null: off)
    prediction_drift: bool = False  # retrain when the outputs moved (BBSD)
    estimated_drop: float | None = Field(None, gt=0, lt=1)  # estimated accuracy this far below the champion's
    realized_drop: float | None = Field(0.05, gt=0, lt=1)  # realized accuracy this far below the champion's ...
    min_labels: int = Field(200, ge=1)  # ... on at least this many labelled rows of the window
    schedule_s: float | None = Field(None, gt=0)  # retrain this long after the last training whatever the evidence


class LoopConfig(_Section):
    enabled: bool = False  # let the controller retrain, promote and roll back on its own (off: it only watches)
    check_interval_s: float = Field(3600.0, gt=0)  # how often the controller looks
    lease_ttl_s: float = Field(300.0, ge=1)  # a controller's hold on a model; renewed while it works
    min_new_labels: int = Field(500, ge=0)  # labelled feedback needed before a retrain
    triggers: LoopTriggersConfig = Field(default_factory=LoopTriggersConfig)  # what calls for a retrain
    min_new_rows: int = Field(1000, ge=0)  # rows logged since the last retrain before another may start
    cooldown_s: float = Field(3600.0, ge=0)  # the least time between two retrains
    max_retrains_per_day: int = Field(4, ge=1)  # retrains started in any 24 hours
    data_window: Literal["expanding", "sliding"] = "expanding"  # retrain on every row so far, or the newest only
    window_rows: int = Field(20_000, ge=10)  # sliding: the newest rows a retrain learns from
    gate_margin: float = Field(0.01, ge=0, le=1)  # the challenger must beat the champion on recent rows by this
    max_original_regression: float = Field(0.02, ge=0, le=1)  # ... and lose at most this on the original test rows
    rollback_min_labels: int = Field(200, ge=1)  # labelled rows served by a new champion before it is judged
    rollback_drop: float = Field(0.03, gt=0, le=1)  # roll back when it is this far behind the previous champion


class AmploopConfig(_Section):
    """All of ``amploop.yaml``; every section has defaults, so an empty file is valid."""

    project: ProjectConfig = Field(default_factory=ProjectConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    loop: LoopConfig = Field(default_factory=LoopConfig)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def load_config(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> AmploopConfig:
    """Read the file, then the environment, then the flags, and validate the result.

    ``path=None`` uses ``./amploop.yaml`` when it exists and defaults otherwise; a path that is
    given must exist. ``environ`` defaults to ``os.environ``. ``overrides`` maps dotted keys to
    values; ``None`` values are skipped (a flag the user did not pass).
    """
    merged: dict[str, Any] = {}
    origin: dict[tuple[str, ...], str] = {}

    file_path = Path(path) if path is not None else Path(CONFIG_FILE_NAME)
    if path is not None or file_path.exists():
        for keys, value in _leaves(_read_yaml(file_path)):
            _put(merged, keys, value)
            origin[keys] = str(file_path)

    for name, raw in sorted((environ if environ is not None else os.environ).items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        keys = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
        if any(not k for k in keys):
            raise ConfigError(f"{name}: empty key between '__'; write AMPLOOP_SECTION__FIELD")
        _put(merged, keys, _env_value(keys, raw))
        origin[keys] = name

    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        keys = tuple(dotted.split("."))
        _put(merged, keys, value)
        origin[keys] = "command line"

    try:
        return AmploopConfig.model_validate(merged)
    except ValidationError as exc:
        raise _config_error(exc, origin) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file; create it or drop --config") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}{where}: not valid YAML ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, not a list or value")
    return data


def _leaves(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Flatten nested sections into (path, value) pairs; dict-valued fields stay whole below depth 2."""
    out: list[tuple[tuple[str, ...], Any]] = []
    for key, value in tree.items():
        keys = (*prefix, str(key))
        if isinstance(value, dict) and len(keys) < 2:
            out.extend(_leaves(value, keys))
        else:
            out.append((keys, value))
    return out


def _put(tree: dict[str, Any], keys: tuple[str, ...], value: Any) -> None:
    node = tree
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[keys[-1]] = value


def _env_value(keys: tuple[str, ...], raw: str) -> Any:
    """An environment value typed by the field it sets: text for text fields, YAML for the rest.

    ``AMPLOOP_PROJECT__NAME=123`` is the name "123", not the number 123; ``AMPLOOP_TRAIN__EPOCHS=3``
    is the number 3 and ``AMPLOOP_DATA__SLICE_COLUMNS=[sex, race]`` a list.
    """
    model: type[BaseModel] = AmploopConfig
    annotation: Any = None
    for key in keys:
        field = model.model_fields.get(key)
        if field is None:
            return _parse_scalar(raw)  # an unknown key: validation names it
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
    if _is_text(annotation):
        return raw
    return _parse_scalar(raw)


def _is_text(annotation: Any) -> bool:
    """``str``, ``str | None`` or a ``Literal`` of strings."""
    if annotation is str:
        return True
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return all(isinstance(v, str) for v in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return len(args) == 1 and _is_text(args[0])
    return False


def _parse_scalar(raw: str) -> Any:
    try:
        return yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError:
        return raw


def _config_error(exc: ValidationError, origin: Mapping[tuple[str, ...], str]) -> ConfigError:
    problems = []
    for err in exc.errors():
        loc = tuple(str(part) for part in err["loc"])
        dotted = ".".join(loc)
        source = next((origin[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in origin), None)
        if source is None:  # a whole unknown section: any value below it tells where it came from
            source = next((src for keys, src in origin.items() if keys[: len(loc)] == loc), None)
        where = f" (from {source})" if source else ""
        if err["type"] == "extra_forbidden":
            valid = _valid_keys(loc[:-1])
            problems.append(f"{dotted}{where}: unknown key; valid keys here: {', '.join(valid)}")
        else:
            problems.append(f"{dotted}{where}: {err['msg'].removeprefix('Value error, ')}")
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return ConfigError(problems[0] + more, problems=problems)


def _valid_keys(section: tuple[str, ...]) -> list[str]:
    model: type[BaseModel] = AmploopConfig
    for key in section:
        field = model.model_fields.get(key)
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return sorted(model.model_fields)
