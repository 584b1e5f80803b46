"""Datasheets (Gebru et al., "Datasheets for Datasets", CACM 2021) rendered from stored facts.

The facts — fingerprints, source, shape, schema, parents and the transformation that derived
the data, the quality summary — come from the store; the prose sections come from the
built-in dataset's sheet and the ``data.datasheet`` fields of ``amploop.yaml`` (the user's
text wins). A section nobody wrote says so rather than being left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

import jinja2

from amploop.errors import UsageError
from amploop.registry.records import DatasetRecord

if TYPE_CHECKING:
    from amploop.config import AmploopConfig
    from amploop.registry.store import Store

__all__ = [
    "CARD_TEXT_FIELDS",
    "DATASHEET_SECTIONS",
    "ModelCard",
    "model_card_text",
    "render_datasheet",
    "render_model_card",
    "write_model_card",
]

DATASHEET_SECTIONS = ("motivation", "composition", "collection", "preprocessing", "uses", "distribution", "maintenance")


def _template(name: str, *, html: bool) -> jinja2.Template:
    environment = jinja2.Environment(
        autoescape=html, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    text = (resources.files("amploop.registry") / "templates" / name).read_text(encoding="utf-8")
    return environment.from_string(text)


def render_datasheet(
    record: DatasetRecord, *, sections: dict[str, str], quality: dict[str, Any] | None = None, fmt: str = "markdown"
) -> str:
    """The datasheet of a stored dataset as Markdown (``fmt="markdown"``) or a self-contained HTML page."""
    filled = {name: (sections.get(name) or "").strip() for name in DATASHEET_SECTIONS}
    extra = {k: v for k, v in sections.items() if k not in DATASHEET_SECTIONS and isinstance(v, str)}
    context = {
        "record": record,
        "sections": filled,
        "extra": extra,
        "quality": quality,
        "columns": record.schema.get("columns", []),
    }
    if fmt == "markdown":
        return _template("datasheet.md.j2", html=False).render(**context)
    if fmt == "html":
        return _template("datasheet.html.j2", html=True).render(**context)
    raise UsageError(f"unknown datasheet format {fmt!r}; use markdown or html")


CARD_TEXT_FIELDS = ("intended_use", "out_of_scope", "factors", "ethical_considerations", "caveats", "recommendations")


def render_model_card(
    facts: dict[str, Any], *, text: dict[str, str], project: dict[str, Any], fmt: str = "markdown"
) -> str:
    """A model card (Mitchell et al., "Model Cards for Model Reporting", FAT* 2019).

    ``facts`` is a version's lineage (see :func:`amploop.registry.lineage.lineage`); the latest
    evaluation supplies metrics and the per-slice analysis; ``text`` holds the user's
    ``project.card`` fields from amploop.yaml.
    """
    latest = facts["evaluations"][-1] if facts.get("evaluations") else None
    context = {
        "facts": facts,
        "evaluation": latest,
        "report": facts.get("latest_report"),
        "text": {k: (text.get(k) or "").strip() for k in CARD_TEXT_FIELDS},
        "project": project,
    }
    if fmt == "markdown":
        return _template("model_card.md.j2", html=False).render(**context)
    if fmt == "html":
        return _template("model_card.html.j2", html=True).render(**context)
    raise UsageError(f"unknown card format {fmt!r}; use markdown or html")


@dataclass(frozen=True)
class ModelCard:
    """A rendered model card and where it is kept in the artifacts."""

    name: str
    version: int
    format: str  # markdown or html
    text: str
    uri: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "format": self.format, "uri": self.uri}


def model_card_text(
    store: Store, name: str, version: int, *, config: AmploopConfig | None = None, fmt: str = "markdown"
) -> str:
    """The version's card from stored facts (lineage, latest evaluation) and ``project.card``, not kept."""
    from amploop.config import AmploopConfig
    from amploop.registry.lineage import lineage

    if fmt not in ("markdown", "html"):
        raise UsageError(f"--format {fmt!r}: use markdown or html")
    config = config or AmploopConfig()
    facts = lineage(store, name, version)
    evaluations = store.list_evaluations(name, version)
    facts["latest_report"] = evaluations[-1].report if evaluations else None
    return render_model_card(facts, text=config.project.card, project=config.project.model_dump(), fmt=fmt)


def write_model_card(
    store: Store, name: str, version: int, *, config: AmploopConfig | None = None, fmt: str = "markdown"
) -> ModelCard:
    """Render the version's card from stored facts (lineage, latest evaluation) and ``project.card``; keep it."""
    text = model_card_text(store, name, version, config=config, fmt=fmt)
    suffix = "md" if fmt == "markdown" else "html"
    ref = store.artifacts.put_bytes(f"models/{name}/cards/{name}-{version}.{suffix}", text.encode())
    return ModelCard(name=name, version=version, format=fmt, text=text, uri=ref.uri)
