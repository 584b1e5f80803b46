"""Text and ID columns with more distinct values than the label-issue screen can bin (255)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from amploop.data import Dataset
from amploop.data.quality import check_quality

AMPLOOP = str(Path(sys.executable).with_name("amploop"))


def _table(rows: int = 800, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A clear numeric signal, a unique ID per row, a 400-value city column; 20 planted label flips."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 2))
    label = (x[:, 0] > 0).astype(int)
    flipped = rng.choice(rows, 20, replace=False)
    label[flipped] = 1 - label[flipped]
    table = pd.DataFrame(
        {
            "a": x[:, 0] * 3,
            "b": x[:, 1],
            "customer_id": [f"C{i:06d}" for i in range(rows)],
            "city": rng.choice([f"city-{i}" for i in range(400)], rows),
            "y": np.where(label == 1, "yes", "no"),
        }
    )
    return table, np.sort(flipped)


def test_label_issues_screen_a_table_with_id_and_many_valued_columns():
    table, flipped = _table()
    report = check_quality(Dataset.from_table("ids", table, target="y"), label_issues=True)
    flagged = {r.row for r in report.suspicious_rows}
    found = len(flagged & set(flipped.tolist()))
    assert found >= 15, f"only {found} of 20 planted flips found"
    assert len(flagged) < 80  # the 400-value and unique columns did not make every row look suspicious


def test_data_check_on_such_a_file_exits_cleanly(tmp_path):
    table, _ = _table(rows=600, seed=1)
    path = tmp_path / "ids.csv"
    table.to_csv(path, index=False)
    done = subprocess.run(
        [AMPLOOP, "data", "check", str(path), "--target", "y"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "label_issues" in done.stdout
