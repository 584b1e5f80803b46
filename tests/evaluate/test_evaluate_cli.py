"""`amploop evaluate` end to end: a trained version in a real store, the report, the gate, the page."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from amploop.errors import ConfigError, GateFailed, ModelNotFound, SchemaError
from tests.conftest import open_page

AMPLOOP = str(Path(sys.executable).with_name("amploop"))


def run(home: Path, *args: str, config: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMPLOOP_")}
    env["AMPLOOP_HOME"] = str(home)
    prefix = ["--config", str(config)] if config else []
    return subprocess.run(
        [AMPLOOP, *prefix, *args], capture_output=True, text=True, env=env, cwd=home.parent, timeout=600
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("evaluate") / ".amploop"
    result = run(home, "train", "--dataset", "adult", "--model", "mlp", "--epochs", "3", "--json")
    assert result.returncode == 0, result.stderr
    return home


def test_evaluate_json_holds_every_part(trained):
    result = run(trained, "evaluate", "adult:1", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["model"] == {"name": "adult", "version": 1}
    assert report["dataset"]["name"] == "adult[test]" and report["dataset"]["rows"] == 16281
    assert report["metrics"]["accuracy"] >= 0.84 and 0.85 < report["metrics"]["roc_auc"] <= 1
    calibration = report["calibration"]
    assert {"ece_before", "ece_after", "temperature", "reliability_before", "reliability_after"} <= set(calibration)
    assert calibration["temperature"] != 1.0  # fitted on the validation rows at training time
    slices = {(s["column"], s["value"]): s for s in report["slices"]["slices"]}
    assert {("sex", "Female"), ("sex", "Male"), ("race", "White")} <= set(slices)
    male = slices[("sex", "Male")]
    assert male["lower"] < male["metric"] < male["upper"] and male["count"] == 10860
    assert report["slices"]["worst"] is not None and report["slices"]["discovered"]
    assert {c["corruption"] for c in report["robustness"]["corruptions"]} == {"feature_noise", "missing_values"}
    assert [p["precision"] for p in report["parity"]] == ["bf16", "fp16", "int8"]
    assert Path(report["html_uri"]).exists()


def _assert_verdict_follows_its_rules(verdict: dict) -> None:
    """A verdict is "pass" exactly when no rule failed, and each rule's outcome is its bound applied."""
    for rule in verdict["rules"]:
        if rule["outcome"] == "skipped":
            assert rule["value"] is None and rule["reason"]
            continue
        assert rule["value"] == verdict["values"][rule["metric"]]  # judged on the value the report gives
        meets = rule["value"] >= rule["threshold"] if rule["comparison"] == ">=" else rule["value"] <= rule["threshold"]
        assert rule["outcome"] == ("pass" if meets else "fail"), rule
    passed = all(r["outcome"] != "fail" for r in verdict["rules"])
    assert (verdict["passed"], verdict["verdict"]) == (passed, "pass" if passed else "fail")


def test_the_default_gate_passes_a_well_trained_model(trained):
    result = run(trained, "evaluate", "adult:1", "--gate", "--json")
    report = json.loads(result.stdout)
    verdict = report["verdict"]
    _assert_verdict_follows_its_rules(verdict)
    # three epochs give a calibrated model whose served precisions agree with fp32; no champion yet
    rules = {r["metric"]: r for r in verdict["rules"]}
    assert [(r["metric"], r["outcome"]) for r in verdict["rules"]] == [
        ("ece", "pass"),
        ("parity_agreement", "pass"),
        ("champion_delta", "skipped"),
    ]
    assert rules["ece"]["value"] == pytest.approx(report["calibration"]["ece_after"], abs=1e-4)
    assert rules["parity_agreement"]["value"] == pytest.approx(min(p["agreement"] for p in report["parity"]), abs=1e-4)
    assert verdict["verdict"] == "pass"
    assert result.returncode == 0, result.stderr  # --gate exits 0 on a pass


def test_gate_exit_codes(trained, tmp_path):
    # a pass exits 0: test_the_default_gate_passes_a_well_trained_model
    strict = tmp_path / "amploop.yaml"
    strict.write_text("evaluate:\n  gate:\n    - {metric: accuracy, min: 0.99}\n    - {metric: ece, max: 0.05}\n")
    failed = run(trained, "evaluate", "adult", "--gate", "--json", config=strict)
    assert failed.returncode == GateFailed.exit_code
    verdict = json.loads(failed.stdout)["verdict"]
    _assert_verdict_follows_its_rules(verdict)
    assert [(r["metric"], r["outcome"]) for r in verdict["rules"]] == [("accuracy", "fail"), ("ece", "pass")]
    assert verdict["verdict"] == "fail"
    assert "gate failed: accuracy" in failed.stderr
    assert run(trained, "evaluate", "adult", config=strict).returncode == 0  # without --gate: report only


def test_unknown_gate_metric_is_a_config_error(trained, tmp_path):
    config = tmp_path / "amploop.yaml"
    config.write_text("evaluate:\n  gate:\n    - {metric: acuracy, min: 0.9}\n")
    result = run(trained, "evaluate", "adult", config=config)
    assert result.returncode == ConfigError.exit_code
    assert "unknown gate metric 'acuracy'; valid: accuracy, balanced_accuracy" in result.stderr


def test_data_with_a_different_schema_names_the_columns(trained, tmp_path):
    csv = tmp_path / "other.csv"
    csv.write_text("age,sex,income\n30,Male,<=50K\n40,Female,>50K\n")
    result = run(trained, "evaluate", "adult", "--data", str(csv))
    assert result.returncode == SchemaError.exit_code
    assert "lacks columns the model was trained on: workclass, fnlwgt" in result.stderr


def test_unknown_model_or_version(trained):
    result = run(trained, "evaluate", "adlt", "--json")
    assert result.returncode == ModelNotFound.exit_code
    assert json.loads(result.stdout)["details"]["close_matches"] == ["adult"]
    assert "has no version 7" in run(trained, "evaluate", "adult:7").stderr


def test_report_page_opens_in_chromium_without_errors(trained, browser, tmp_path):
    report = json.loads(run(trained, "evaluate", "adult", "--json").stdout)
    screenshot = tmp_path / "report.png"
    page, problems = open_page(browser, Path(report["html_uri"]).as_uri(), screenshot)
    assert problems == []
    assert report["verdict"]["verdict"] == "pass"  # the default gate (see above)
    assert page.locator("#verdict").inner_text() == "PASS"
    assert page.locator("svg").count() >= 4  # reliability x2, confusion matrix, slices, corruption curves
    assert "sex = Female" in page.content()
    assert screenshot.stat().st_size > 20_000
    artifacts = Path(os.environ.get("AMPLOOP_TEST_ARTIFACTS", "test-artifacts"))
    artifacts.mkdir(exist_ok=True)
    (artifacts / "evaluation-report.png").write_bytes(screenshot.read_bytes())
    page.close()
