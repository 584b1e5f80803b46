"""Quality at the command line: `data check`, training that refuses bad data, the poisoning screen, datasheets."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from amploop.errors import ConfigError, QualityError
from amploop.registry import Store
from amploop.workspace import Workspace
from tests.conftest import open_page

AMPLOOP = str(Path(sys.executable).with_name("amploop"))


def run(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMPLOOP_")}
    env["AMPLOOP_HOME"] = str(home)
    return subprocess.run([AMPLOOP, *args], capture_output=True, text=True, env=env, cwd=home.parent, timeout=600)


def write_table(path: Path, *, card: bool = False, outliers: bool = False) -> Path:
    rng = np.random.default_rng(0)
    n = 1200
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    table = pd.DataFrame({"x1": x1, "x2": x2, "y": (x1 + 0.5 * x2 > 0).astype(int)})
    if card:
        table["payment"] = "paid with 4111 1111 1111 1111"
    if outliers:
        table.loc[:29, "x1"] = 50.0
    table.to_csv(path, index=False)
    return path


def test_data_check_exit_codes_and_json(tmp_path):
    clean = write_table(tmp_path / "clean.csv")
    ok = run(tmp_path / "h", "data", "check", str(clean), "--target", "y", "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["counts"]["block"] == 0
    bad = write_table(tmp_path / "bad.csv", card=True)
    refused = run(tmp_path / "h", "data", "check", str(bad), "--target", "y", "--json")
    assert refused.returncode == QualityError.exit_code
    finding = json.loads(refused.stdout)["findings"][0]
    assert finding["severity"] == "block" and finding["columns"] == ["payment"]
    assert "4111" not in refused.stdout


def test_data_check_against_training_data_finds_leakage(tmp_path):
    adult_like = write_table(tmp_path / "train.csv")
    leaked = tmp_path / "test.csv"
    pd.read_csv(adult_like).iloc[:200].to_csv(leaked, index=False)
    result = run(
        tmp_path / "h", "data", "check", str(leaked), "--target", "y", "--against", str(adult_like), "--no-label-issues"
    )
    assert result.returncode == QualityError.exit_code
    assert "200 rows (100.00%) also appear in train" in result.stdout


def test_training_refuses_blocking_data_unless_told_why(tmp_path):
    bad = write_table(tmp_path / "bad.csv", card=True)
    home = tmp_path / "h"
    refused = run(home, "train", "--dataset", str(bad), "--target", "y", "--epochs", "1", "--batch-size", "64")
    assert refused.returncode == QualityError.exit_code
    assert "training refused" in refused.stderr and "--allow-quality-issues" in refused.stderr
    no_reason = run(home, "train", "--dataset", str(bad), "--target", "y", "--allow-quality-issues")
    assert no_reason.returncode == ConfigError.exit_code and "--reason" in no_reason.stderr
    allowed = run(
        home,
        "train",
        "--dataset",
        str(bad),
        "--target",
        "y",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--allow-quality-issues",
        "--reason",
        "synthetic test card numbers",
        "--json",
    )
    assert allowed.returncode == 0, allowed.stderr
    with Store.open(Workspace.from_env({"AMPLOOP_HOME": str(home)})) as store:
        override = [e for e in store.audit_log() if e.action == "train.quality_override"]
        assert len(override) == 1 and override[0].reason == "synthetic test card numbers"
        assert "card numbers" in override[0].details["findings"][0]
        assert len(store.list_model_versions()) == 1  # the refused runs registered nothing


def test_exclude_suspicious_drops_rows_from_training_only_and_records_it(tmp_path):
    data = write_table(tmp_path / "d.csv", outliers=True)
    home = tmp_path / "h"
    result = run(
        home,
        "train",
        "--dataset",
        str(data),
        "--target",
        "y",
        "--epochs",
        "2",
        "--batch-size",
        "64",
        "--exclude-suspicious",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["excluded_suspicious_rows"] >= 30
    with Store.open(Workspace.from_env({"AMPLOOP_HOME": str(home)})) as store:
        train = store.get_dataset(out["data"]["train"])
        test = store.get_dataset(out["data"]["test"])
    assert "without" in train.transformation and "suspicious rows" in train.transformation
    assert train.parents == [out["data"]["source"]]
    assert test.n_rows == 240  # the test rows are left as they are


def test_datasheet_markdown_and_html(tmp_path, browser):
    home = tmp_path / "h"
    markdown = run(home, "data", "datasheet", "rainfall")
    assert markdown.returncode == 0, markdown.stderr
    for section in (
        "Motivation",
        "Composition",
        "Collection",
        "Preprocessing",
        "Uses",
        "Distribution",
        "Maintenance",
        "Columns",
        "Quality",
    ):
        assert f"## {section}" in markdown.stdout
    assert "18,159 × 9" in markdown.stdout
    page_path = tmp_path / "sheet.html"
    html = run(home, "data", "datasheet", "adult", "--format", "html", "--output", str(page_path))
    assert html.returncode == 0, html.stderr
    page, problems = open_page(browser, page_path.as_uri(), tmp_path / "sheet.png")
    assert problems == []
    assert page.locator("#facts").inner_text().count("53f1f53d15f5") == 1
    assert page.locator("h2").count() >= 10
    page.close()
