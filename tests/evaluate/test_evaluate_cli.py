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
    # adult's 3,256 validation rows show that scaling does not help rows it was not fitted on: T = 1 is served,
    # so the served ECE is the uncalibrated one (with T fitted on all rows, ECE rose from 0.0094 to 0.0147)
    decision = calibration["decision"]
    assert decision["rows"] == 3256 and decision["folds"] == 5
    assert decision["kept"] is False and calibration["temperature"] == decision["temperature"] == 1.0
    assert decision["reason"].startswith("kept T = 1 (fitted ") and decision["fitted_temperature"] != 1.0
    assert calibration["ece_after"] <= calibration["ece_before"]
    slices = {(s["column"], s["value"]): s for s in report["slices"]["slices"]}
    assert {("sex", "Female"), ("sex", "Male"), ("race", "White")} <= set(slices)
    male = slices[("sex", "Male")]
    assert male["lower"] < male["metric"] < male["upper"] and male["count"] == 10860
    assert report["slices"]["worst"] is not None and report["slices"]["discovered"]
    assert {c["corruption"] for c in report["robustness"]["corruptions"]} == {"feature_noise", "missing_values"}
    assert [p["precision"] for p in report["parity"]] == ["bf16", "fp16", "int8"]
    assert Path(report["html_uri"]).exists()


def _assert_verdict_follows_its_rules(verdict: dict) -> None:
    """A verdict is "pass" exactly when no rule failed, and each rule's outcome is its bound applied to its interval."""
    for rule in verdict["rules"]:
        if rule["outcome"] == "skipped":
            assert rule["value"] is None and rule["reason"]
            continue
        assert rule["value"] == verdict["values"][rule["metric"]]  # judged on the value the report gives
        assert [rule["lower"], rule["upper"]] == verdict["intervals"][rule["metric"]]  # and its interval
        assert rule["judged_on"] == "interval" and rule["lower"] <= rule["value"] <= rule["upper"]
        # a minimum fails only when the whole interval is below it, a maximum only when it is all above
        meets = rule["upper"] >= rule["threshold"] if rule["comparison"] == ">=" else rule["lower"] <= rule["threshold"]
        assert rule["outcome"] == ("pass" if meets else "fail"), rule
    passed = all(r["outcome"] != "fail" for r in verdict["rules"])
    assert (verdict["passed"], verdict["verdict"]) == (passed, "pass" if passed else "fail")


def test_the_default_gate_passes_a_well_trained_model(trained):
    result = run(trained, "evaluate", "adult:1", "--gate", "--json")
    report = json.loads(result.stdout)
    verdict = report["verdict"]
    _assert_verdict_follows_its_rules(verdict)
    # three epochs beat the trivial baselines, are calibrated, agree with fp32 in every served precision
    # and shrug off mild corruption; no champion yet
    rules = {r["metric"]: r for r in verdict["rules"]}
    assert [(r["metric"], r["outcome"]) for r in verdict["rules"]] == [
        ("baseline_margin", "pass"),
        ("ece", "pass"),
        ("parity_agreement", "pass"),
        ("mild_corruption_drop", "pass"),
        ("champion_delta", "skipped"),
    ]
    assert rules["baseline_margin"]["value"] == pytest.approx(report["baselines"]["margin"])
    assert rules["mild_corruption_drop"]["value"] == pytest.approx(
        max(c["drop"] for c in report["robustness"]["corruptions"] if c["mild"])
    )
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


def test_balanced_accuracy_beside_accuracy_on_skewed_classes(trained):
    # adult's test rows are 76% <=50K: always answering that class has accuracy 0.76 and balanced accuracy 0.50
    result = run(trained, "evaluate", "adult")
    assert result.returncode == 0, result.stderr
    accuracy_line = next(line for line in result.stdout.splitlines() if line.startswith("accuracy "))
    assert ", balanced accuracy 0.7" in accuracy_line and "(skewed classes: <=50K 76%, >50K 24%)" in accuracy_line
    assert "trivial baselines (balanced accuracy, from the training rows): majority class 0.5000, prior 0.5000" in (
        result.stdout
    )
    assert "temperature: kept T = 1 (fitted " in result.stdout
    card = run(trained, "models", "card", "adult:1")
    assert card.returncode == 0, card.stderr
    assert "The classes are skewed (<=50K 76%, >50K 24%): accuracy 0.8" in card.stdout
    assert ", balanced accuracy **0.7" in card.stdout and "Temperature: kept T = 1 (fitted " in card.stdout
    assert "- pass: baseline_margin = " in card.stdout and "(95% interval " in card.stdout


def _adult_rows(tmp_path: Path, name: str, *, shift: bool) -> Path:
    from amploop.data import load_builtin

    rows = load_builtin("adult").split("test").table.sample(1500, random_state=7)
    if shift:  # an older population working longer hours
        rows = rows.assign(age=rows["age"] + 15, hours_per_week=rows["hours_per_week"] * 1.5)
    path = tmp_path / name
    rows.to_csv(path, index=False)
    return path


def test_new_rows_from_the_training_distribution_do_not_look_different(trained, tmp_path):
    path = _adult_rows(tmp_path, "same.csv", shift=False)
    result = run(trained, "evaluate", "adult:1", "--data", str(path), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    shift = report["shift"]
    assert shift["available"] and shift["reference"] == "adult[train]" and shift["rows"] == 1500
    assert shift["differing"] == [] and shift["summary"].startswith("the new rows look like the training rows")
    assert len(shift["columns"]) == 14 and all(c["test"] in ("ks", "chi_square") for c in shift["columns"])
    # compared with the version's own test result: the same population scores about the same
    holdout = report["holdout"]
    assert holdout["source"].startswith("its own test rows")
    accuracy = next(m for m in holdout["metrics"] if m["metric"] == "accuracy")
    assert accuracy["new"] == report["metrics"]["accuracy"] and accuracy["verdict"] == "similar"
    assert holdout["summary"].startswith(f"accuracy {accuracy['new']:.4f} on these rows against ")


def test_shifted_new_rows_are_named_column_by_column(trained, tmp_path):
    path = _adult_rows(tmp_path, "shifted.csv", shift=True)
    result = run(trained, "evaluate", "adult:1", "--data", str(path), "--json")
    assert result.returncode == 0, result.stderr
    shift = json.loads(result.stdout)["shift"]
    assert shift["differing"] == ["age", "hours_per_week"]
    assert shift["summary"] == "the new rows differ from the training rows in 2 of 14 columns: age, hours_per_week"
    age = next(c for c in shift["columns"] if c["column"] == "age")
    assert age["test"] == "ks" and age["effect"] > 0.3 and age["p_value"] < 1e-10
    assert age["current"]["mean"] == pytest.approx(age["reference"]["mean"] + 15, abs=1.0)
    text = run(trained, "evaluate", "adult:1", "--data", str(path))
    assert "shift: the new rows differ from the training rows in 2 of 14 columns: age, hours_per_week" in text.stdout
    assert "against its test result: accuracy " in text.stdout


def test_new_rows_of_a_version_whose_training_rows_are_gone(tmp_path):
    home = tmp_path / ".amploop"
    rng = __import__("numpy").random.default_rng(0)
    x = rng.normal(size=(300, 3))
    table = "a,b,c,label\n" + "".join(f"{r[0]},{r[1]},{r[2]},{'yes' if r[0] + r[1] > 0 else 'no'}\n" for r in x)
    source = tmp_path / "mine.csv"
    source.write_text(table)
    trained = run(home, "train", "--dataset", str(source), "--target", "label", "--epochs", "2", "--json")
    assert trained.returncode == 0, trained.stderr
    kept = tmp_path / "new.csv"
    kept.write_text(table)
    source.unlink()  # the training rows can no longer be rebuilt
    result = run(home, "evaluate", "mine", "--data", str(kept), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["shift"]["available"] is False
    assert report["shift"]["summary"].startswith("cannot compare with the training rows: ")
    assert report["holdout"]["source"] == "its own test rows (as measured at training)"
    assert report["baselines"]["source"] == "evaluation rows"
