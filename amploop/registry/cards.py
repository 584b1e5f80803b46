"""Datasheets (Gebru et al., "Datasheets for Datasets", CACM 2021) rendered from stored facts.

The facts — fingerprints, source, shape, schema, parents and the transformation that derived
the data, the quality summary — come from the store; the prose sections come from the
built-in dataset's sheet and the ``data.datasheet`` fields of ``amploop.yaml`` (the user's
text wins). A section nobody wrote says so rather than being left out.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import jinja2

from amploop.registry.store import DatasetRecord

__all__ = ["CARD_TEXT_FIELDS", "DATASHEET_SECTIONS", "render_datasheet", "render_model_card"]

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
    raise ValueError(f"unknown datasheet format {fmt!r}; use markdown or html")


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
    raise ValueError(f"unknown card format {fmt!r}; use markdown or html")
