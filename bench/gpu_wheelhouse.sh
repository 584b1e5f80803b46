#!/usr/bin/env bash
# Wheels for the GPU host (Python 3.12, x86-64, no network): what amploop needs beyond torch,
# numpy and pandas, downloaded here into bench/.wheelhouse (git ignores it; carry it to the host).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
$PY -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  -d bench/.wheelhouse \
  pydantic pydantic-core annotated-types typing-inspection typing-extensions \
  sqlalchemy alembic mako fastapi starlette annotated-doc anyio idna uvicorn h11 click \
  httpx httpcore certifi pyyaml prometheus-client jinja2 markupsafe fsspec
du -sh bench/.wheelhouse
