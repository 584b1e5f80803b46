"""A trained model with its encoder, as three files: what the registry stores and loads back.

A :class:`ModelBundle` is ``model.safetensors`` (weights), ``model.json`` (architecture,
options, input spec, task, class names, the training schema) and ``encoder.json`` (the fitted
feature encoder). The registry stores them with their SHA-256.

Loading checks more than the registry's SHA-256 can: a digest only proves the bytes are the
ones registered, not that they are a model. :meth:`ModelBundle.from_files` therefore validates
``model.json`` field by field, reads the weights as safetensors only (nothing is unpickled),
and compares every tensor's name and shape with the architecture built on the ``meta`` device
(no memory is allocated), so a damaged or forged file is an :class:`ArtifactError` naming the
version and the file, never a traceback from deep inside torch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from amploop.errors import ArtifactError, ConfigError, SchemaError
from amploop.models.zoo import CUSTOM_ARCHITECTURE, ModelSpec, build_model

if TYPE_CHECKING:
    from amploop.data import FeatureEncoder

__all__ = ["BUNDLE_FORMAT", "ENCODER", "META", "WEIGHTS", "ModelBundle"]

BUNDLE_FORMAT = 1
WEIGHTS, META, ENCODER = "model.safetensors", "model.json", "encoder.json"
_RESTORE = "the stored file is damaged or was replaced: restore it or register the model again"


class _SpecFile(BaseModel):
    """``spec`` in model.json: the shapes the architecture is built for."""

    model_config = ConfigDict(extra="forbid")
    n_numeric: int = Field(0, ge=0)
    cardinalities: list[int] = []
    image_shape: list[int] | None = None
    n_outputs: int = Field(1, ge=1)
    vocab_size: int | None = Field(None, ge=1)
    block_size: int | None = Field(None, ge=1)

    @field_validator("cardinalities", "image_shape")
    @classmethod
    def _positive(cls, sizes: list[int] | None) -> list[int] | None:
        if sizes is not None and any(size < 1 for size in sizes):
            raise ValueError("every size must be at least 1")
        return sizes


class _MetaFile(BaseModel):
    """model.json, as :meth:`ModelBundle.to_files` writes it."""

    model_config = ConfigDict(extra="forbid")
    format: int
    architecture: str
    options: dict[str, Any]
    spec: _SpecFile
    task: Literal["classification", "regression"]
    target: str
    classes: list[str] | None
    table_schema: dict[str, Any] = Field(alias="schema")
    trained_precision: str = "fp32"
    temperature: float = 1.0
    temperature_decision: dict[str, Any] | None = None  # absent in bundles from before it was recorded

    @field_validator("temperature")
    @classmethod
    def _finite_positive(cls, value: float) -> float:
        if not (math.isfinite(value) and value > 0):
            raise ValueError("must be a finite number above 0")
        return value


@dataclass(frozen=True)
class ModelBundle:
    architecture: str
    options: dict[str, Any]
    spec: ModelSpec
    task: str
    target: str
    classes: list[str] | None
    schema: dict[str, Any]  # the feature schema requests are validated against
    encoder_json: str
    weights: dict[str, torch.Tensor]
    trained_precision: str = "fp32"
    temperature: float = 1.0  # fitted on validation data; divides the logits (temperature scaling)
    temperature_decision: dict[str, Any] | None = None  # why that temperature: TemperatureDecision.to_dict()

    def to_files(self) -> dict[str, bytes]:
        meta = {
            "format": BUNDLE_FORMAT,
            "architecture": self.architecture,
            "options": self.options,
            "spec": self.spec.to_dict(),
            "task": self.task,
            "target": self.target,
            "classes": self.classes,
            "schema": self.schema,
            "trained_precision": self.trained_precision,
            "temperature": self.temperature,
        }
        if self.temperature_decision is not None:  # written only when known, so older readers see no new key
            meta["temperature_decision"] = self.temperature_decision
        weights = {k: v.detach().contiguous().cpu() for k, v in self.weights.items()}
        return {
            WEIGHTS: save_safetensors(weights),
            META: json.dumps(meta, sort_keys=True).encode(),
            ENCODER: self.encoder_json.encode(),
        }

    @classmethod
    def from_files(cls, files: dict[str, bytes], *, source: str = "model bundle") -> ModelBundle:
        """The bundle in ``files``; anything malformed is an :class:`ArtifactError` naming ``source`` and the file.

        ``source`` says whose files these are in messages, e.g. ``"adult:3"``.
        """
        missing = [f for f in (WEIGHTS, META, ENCODER) if f not in files]
        if missing:
            raise ArtifactError(f"{source}: model files missing: {', '.join(missing)}; {_RESTORE}", source=source)
        meta = _read_meta(files[META], source)
        if meta.format != BUNDLE_FORMAT:
            raise ArtifactError(
                f"{source}: {META} has format {meta.format}, this amploop reads format {BUNDLE_FORMAT}; "
                "retrain the model with this amploop version",
                source=source,
                file=META,
            )
        spec = ModelSpec.from_dict(meta.spec.model_dump())
        encoder_json = _read_encoder(files[ENCODER], source)
        try:
            weights = load_safetensors(files[WEIGHTS])
        except SafetensorError as exc:
            raise ArtifactError(
                f"{source}: {WEIGHTS} is not a valid safetensors file ({_one_line(exc)}); {_RESTORE}",
                source=source,
                file=WEIGHTS,
            ) from None
        if meta.architecture != CUSTOM_ARCHITECTURE:  # a custom model is checked against the module it loads into
            _check_weights_fit(meta.architecture, spec, meta.options, weights, source)
        return cls(
            architecture=meta.architecture,
            options=meta.options,
            spec=spec,
            task=meta.task,
            target=meta.target,
            classes=meta.classes,
            schema=meta.table_schema,
            encoder_json=encoder_json,
            weights=weights,
            trained_precision=meta.trained_precision,
            temperature=meta.temperature,
            temperature_decision=meta.temperature_decision,
        )

    def build(self, module: nn.Module | None = None) -> nn.Module:
        """The model with its weights, in eval mode.

        A ``custom`` model (a user's own ``nn.Module``) loads into ``module``, a new instance of
        its class; a built-in architecture is built from ``model.json`` and ignores ``module``.
        """
        if self.architecture != CUSTOM_ARCHITECTURE:
            model = build_model(self.architecture, self.spec, self.options)
            model.load_state_dict(self.weights)
            return model.eval()
        if module is None:
            return build_model(self.architecture, self.spec, self.options)  # raises: says what to pass
        try:
            module.load_state_dict(self.weights)
        except RuntimeError as exc:
            first = (str(exc).strip().splitlines() or ["shapes differ"])[0][:200]
            raise ConfigError(
                f"the module passed does not fit this model's weights ({first}); pass an instance of "
                f"{self.options.get('class', 'the class it was trained as')} built with the same sizes"
            ) from None
        return module.eval()

    def encoder(self) -> FeatureEncoder:
        from amploop.data import FeatureEncoder

        return FeatureEncoder.from_json(self.encoder_json)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _read_meta(data: bytes, source: str) -> _MetaFile:
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(
            f"{source}: {META} is not valid JSON ({_one_line(exc)}); {_RESTORE}", source=source, file=META
        ) from None
    if not isinstance(raw, dict):
        raise ArtifactError(f"{source}: {META} must hold a JSON object; {_RESTORE}", source=source, file=META)
    try:
        return _MetaFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise ArtifactError(
            f"{source}: {META} field {where}: {first['msg']}; {_RESTORE}", source=source, file=META
        ) from None


def _read_encoder(data: bytes, source: str) -> str:
    from amploop.data import FeatureEncoder

    try:
        text = data.decode()
        FeatureEncoder.from_json(text)
    except SchemaError as exc:  # a format from another amploop version
        raise ArtifactError(f"{source}: {ENCODER}: {exc.message}", source=source, file=ENCODER) from None
    # json, missing keys, values of the wrong type: every way a damaged file fails to parse
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ArtifactError(
            f"{source}: {ENCODER} is not a valid feature encoder ({type(exc).__name__}: {_one_line(exc)}); {_RESTORE}",
            source=source,
            file=ENCODER,
        ) from None
    return text


def _check_weights_fit(
    architecture: str, spec: ModelSpec, options: dict[str, Any], weights: dict[str, torch.Tensor], source: str
) -> None:
    """Every tensor the architecture needs, with its shape, and nothing else; else ArtifactError."""
    try:
        with torch.device("meta"):  # shapes only: parameters get no memory and no initial values
            expected = {k: tuple(v.shape) for k, v in build_model(architecture, spec, options).state_dict().items()}
    except (ConfigError, TypeError, ValueError, OverflowError, RuntimeError) as exc:
        message = exc.message if isinstance(exc, ConfigError) else _one_line(exc)
        raise ArtifactError(
            f"{source}: {META} does not describe a model amploop can build ({message}); {_RESTORE}",
            source=source,
            file=META,
        ) from None
    got = {k: tuple(v.shape) for k, v in weights.items()}
    problems = [f"{k} is missing" for k in sorted(expected.keys() - got.keys())]
    problems += [f"{k} is not part of the model" for k in sorted(got.keys() - expected.keys())]
    problems += [
        f"{k} has shape {list(got[k])}, the model needs {list(expected[k])}"
        for k in sorted(expected.keys() & got.keys())
        if got[k] != expected[k]
    ]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ArtifactError(
            f"{source}: {WEIGHTS} does not fit the {architecture} architecture in {META}: {problems[0]}{more}; "
            f"{_RESTORE}",
            source=source,
            file=WEIGHTS,
            problems=problems[:20],
        )
