"""The drift page: real file and window reports rendered, read as text and in a real browser."""

import html
import re
from pathlib import Path

import numpy as np
import pandas as pd

from amploop.config import MonitorConfig
from amploop.monitor.estimate import estimate_performance, realized_performance
from amploop.monitor.files import drift_files
from amploop.monitor.multivariate import bbsd_test
from amploop.monitor.profile import Profile
from amploop.monitor.reference import Reference
from amploop.monitor.report import render_drift_html
from amploop.monitor.stream import ChangeMonitor
from amploop.monitor.univariate import compare_profiles
from amploop.monitor.windows import DriftReport, _alerts
from tests.conftest import open_page

WEIRD = '<b>&"q'  # a column name that is also markup
ROW = re.compile(
    r'<tr class="(drifted|stable)">\s*<td class="name"><a href="#[\w-]+">(.*?)</a>.*?'
    r'<td class="verdict-cell">(?:<b>)?(drifted|no drift)(?:</b>)?</td>',
    re.S,
)


def write_files(tmp_path: Path, rows: int = 2000) -> tuple[Path, Path, list[str]]:
    """Two CSVs of the same columns; ``age`` and ``city`` moved in the second. Returns raw values to look for."""
    rng = np.random.default_rng(3)
    cities = ["north", "south", "east", "west", "<i>x</i>&co"]

    def table(start: int, age_shift: float, city_shares: list[float]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "age": rng.normal(40, 10, rows) + age_shift,
                "income": rng.lognormal(10, 0.5, rows),
                "city": rng.choice(cities, rows, p=city_shares),
                WEIRD: rng.integers(0, 6, rows),
                "customer_id": [f"secret-id-{i:06d}" for i in range(start, start + rows)],
                "label": rng.integers(0, 2, rows),
            }
        )

    reference = table(0, 0.0, [0.4, 0.3, 0.15, 0.1, 0.05])
    current = table(rows, 8.0, [0.1, 0.1, 0.2, 0.3, 0.3])
    reference_path, current_path = tmp_path / "reference.csv", tmp_path / "current.csv"
    reference.to_csv(reference_path, index=False)
    current.to_csv(current_path, index=False)
    written = pd.read_csv(current_path, dtype=str)  # the values exactly as the file holds them
    raw = [*written["age"][:5], *written["income"][:5], *pd.read_csv(reference_path, dtype=str)["age"][:5]]
    return reference_path, current_path, raw


def verdicts(page: str) -> dict[str, str]:
    """Each table row's column name (unescaped) -> its verdict cell (drifted or no drift), in page order."""
    rows = ROW.findall(page)
    assert all((style == "drifted") == (cell == "drifted") for style, _, cell in rows)  # the shading agrees
    return {html.unescape(name): cell for _, name, cell in rows}


def test_file_report_marks_the_moved_columns_and_shows_no_rows(tmp_path):
    reference, current, raw_values = write_files(tmp_path)
    report = drift_files(reference, current, target="label")
    assert sorted(report.features.drifted) == ["age", "city"]  # the input the page must show
    page = render_drift_html(report.to_dict())

    assert '<span class="badge drift" id="verdict">DRIFT</span>' in page
    assert '<strong id="headline">The inputs changed: 2 of 4 columns drifted.</strong>' in page
    rows = verdicts(page)
    assert rows == {"age": "drifted", "city": "drifted", "income": "no drift", WEIRD: "no drift", "label": "no drift"}
    assert list(rows)[:2] == ["age", "city"]  # drifted first
    assert "customer_id (text column" in page  # named as not compared

    # one chart per compared column (four features and the target), each labelled with its verdict
    assert page.count("<svg") == 5 == page.count('role="img"')
    assert re.search(r'aria-label="age: drifted \(Wasserstein / sd 0\.\d+ ≥ 0\.1\)"', page)
    assert 'aria-label="income: no drift (Wasserstein / sd' in page

    # names and categories are text, never markup; nothing from the rows beyond shares and statistics
    assert WEIRD not in page and "<b>&" not in page and "<i>" not in page
    assert "&lt;b&gt;&amp;" in page and "&lt;i&gt;x&lt;/i&gt;&amp;co" in page
    assert "secret-id" not in page
    assert len(raw_values) == 15 and not [value for value in raw_values if value in page]
    assert "<script" not in page and "https://" not in page and " src=" not in page

    same = render_drift_html(drift_files(reference, reference, target="label").to_dict())
    assert '<strong id="headline">No drift found: none of the 4 columns drifted.</strong>' in same
    assert ">NO DRIFT<" in same and set(verdicts(same).values()) == {"no drift"}


def window_report() -> dict:
    """One monitored window built from the real pieces: profiles, BBSD, CBPE, labels, ADWIN and the alert rules."""
    rng = np.random.default_rng(11)
    classes = ["stay", "churn"]

    def rows(n: int, near_boundary: bool) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        # training rows lie far from the boundary at x = 0; the window's crowd around it, so the model is unsure
        x = rng.normal(0, 0.5, n) if near_boundary else rng.choice([-1, 1], n) * rng.normal(2, 0.5, n)
        positive = 1 / (1 + np.exp(-3 * x))
        labels = (rng.random(n) < positive).astype(np.int64)  # calibrated: labels drawn from the probabilities
        table = pd.DataFrame({"tenure": x, "plan": rng.choice(["basic", "pro"], n)})
        return table, np.column_stack([1 - positive, positive]), labels

    train, train_probabilities, train_labels = rows(3000, near_boundary=False)
    window, probabilities, labels = rows(400, near_boundary=True)
    kinds = {"tenure": "numeric", "plan": "categorical"}
    profile = Profile.from_table(train, kinds).add_outputs(train_probabilities, classes, reference=True)
    level = realized_performance(train_labels, train_probabilities.argmax(1), 2)
    calibration = {"temperature_kept": True, "reason": "kept T = 1.10", "ece": 0.02, "validation_rows": 3000}
    meta = {"accuracy": level.accuracy, "f1": level.f1, "f1_kind": level.f1_kind, "validation_rows": 3000}
    profile.meta.update(meta, calibration=calibration)
    reference = Reference(profile, train_probabilities, classes, kinds, "churned")
    current = profile.empty().add(window).add_outputs(probabilities, classes)

    config = MonitorConfig()
    options = {"alpha": config.drift_p_value, "correction": config.correction, "drift_share": config.drift_share}
    predicted = probabilities.argmax(1)
    changes = ChangeMonitor()
    changes.update_many("error", (train_probabilities.argmax(1)[:1000] != train_labels[:1000]).astype(float))
    alarms = changes.update_many("error", (predicted[:150] != labels[:150]).astype(float))
    found = {
        "features": compare_profiles(profile, current, **options).to_dict(),
        "predictions": {
            "bbsd": bbsd_test(train_probabilities, probabilities, alpha=config.drift_p_value).to_dict(),
            "outputs": compare_profiles(profile, current, outputs=True, **options).to_dict(),
        },
        "estimated": estimate_performance(probabilities, calibration=calibration).to_dict(),
        "realized": realized_performance(labels[:150], predicted[:150], 2, window_rows=400).to_dict(),
        "stream_alarms": [{**a.to_dict(), "row": 4000 + a.index - 1000} for a in alarms],
    }
    window_info = {"first_log_id": 91, "last_log_id": 130, "first_at": "2025-03-01T10:00:00", "n_rows": 400}
    window_info |= {"last_at": "2025-03-01T10:20:00", "n_requests": 40, "first_row": 4000, "last_row": 4399}
    reference_info = {**meta, "calibration": calibration}
    alerts = _alerts(found, reference, config)
    report = DriftReport("churn:3", window_info, reference=reference_info, alerts=alerts, **found)
    return DriftReport(**{**report.__dict__, "id": 7}).to_dict()


def test_window_report_shows_alerts_and_performance():
    report = window_report()
    kinds = [alert["kind"] for alert in report["alerts"]]
    assert kinds[:3] == ["feature_drift", "prediction_drift", "estimated_performance"]  # what the page must show
    page = render_drift_html(report)

    assert f'id="verdict">ALERT ({len(kinds)})</span>' in page
    assert '<strong id="headline">The inputs changed: 1 of 2 columns drifted.</strong>' in page
    alerts = page.split('<ul class="alerts" id="alerts">')[1].split("</ul>")[0]
    for alert in report["alerts"]:
        assert html.escape(alert["message"], quote=True).replace("&#x27;", "&#39;") in alerts
    assert alerts.count(">CRITICAL<") == sum(a["severity"] == "critical" for a in report["alerts"]) >= 1

    est, real, was = report["estimated"], report["realized"], report["reference"]["accuracy"]
    assert est["accuracy"] < was - 0.05
    sentence = (
        f"Accuracy estimated {est['accuracy']:.3f} ({est['accuracy_low']:.3f}–{est['accuracy_high']:.3f}); "
        f"measured {real['accuracy']:.3f} on 150 labelled rows, was {was:.3f} on the validation rows."
    )
    assert f'<p id="performance-sentence">{sentence}</p>' in page
    assert "150 labelled rows (38% of the window)" in page
    assert verdicts(page.split('id="columns"')[1].split("</table>")[0]) == {"tenure": "drifted", "plan": "no drift"}
    assert re.search(r"p = [\d.e-]+ against α = 0.01, <b>drifted</b>", page)
    # a chart per input column and per output column: p(stay), p(churn), confidence, prediction
    assert page.count("<svg") == 2 + 4
    assert 'aria-label="confidence: drifted' in page and 'aria-label="prediction:' in page


def test_page_in_a_browser_at_phone_and_desktop_widths(tmp_path, browser):
    reference, current, _ = write_files(tmp_path, rows=500)
    pages = {
        "files": render_drift_html(drift_files(reference, current, target="label").to_dict()),
        "window": render_drift_html(window_report()),
    }
    for name, text in pages.items():
        path = tmp_path / f"{name}.html"
        path.write_text(text, encoding="utf-8")
        page, problems = open_page(browser, path.as_uri(), tmp_path / f"{name}-start.png")
        try:
            for width, height in ((390, 844), (1280, 900)):
                page.set_viewport_size({"width": width, "height": height})
                page.screenshot(path=str(tmp_path / f"{name}-{width}.png"), full_page=True)
                headline = page.locator("#headline")
                assert headline.is_visible() and page.locator("#verdict").is_visible()
                assert headline.inner_text().startswith("The inputs changed: ")
                box = headline.bounding_box()
                assert box is not None and box["y"] + box["height"] < height  # the verdict is on the first screen
                # wide tables scroll in their own box; the page itself never scrolls sideways
                assert page.evaluate("document.documentElement.scrollWidth") <= width
            assert page.locator("svg[role=img]").count() == text.count("<svg")
        finally:
            page.close()
        assert problems == []
