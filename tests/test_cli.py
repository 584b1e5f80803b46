"""The real command line, run as a user runs it: a separate process, its stdout, stderr and exit code."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from amploop.config import AmploopConfig
from amploop.errors import ConfigError, DataError, DatasetNotFound, StoreError
from amploop.registry import Store
from amploop.ui.server import background_ui
from amploop.workspace import Workspace

AMPLOOP = str(Path(sys.executable).with_name("amploop"))


def run(args, tmp_path, env_extra=None, cwd=None, timeout=120):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMPLOOP_")}
    env.update({"AMPLOOP_HOME": str(tmp_path / ".amploop"), "COLUMNS": "120"})
    env.update(env_extra or {})
    return subprocess.run(
        [AMPLOOP, *args], capture_output=True, text=True, env=env, cwd=cwd or tmp_path, timeout=timeout
    )


def test_version_and_python_dash_m(tmp_path):
    from amploop import __version__

    assert run(["--version"], tmp_path).stdout.strip() == f"amploop {__version__}"
    module = subprocess.run([sys.executable, "-m", "amploop", "--version"], capture_output=True, text=True)
    assert module.returncode == 0 and module.stdout.strip() == f"amploop {__version__}"


def test_datasets_json_lists_the_three_with_row_counts(tmp_path):
    result = run(["datasets", "--json"], tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {d["name"]: d["rows"] for d in json.loads(result.stdout)["datasets"]}
    assert rows == {"adult": 48842, "mnist5k": 5000, "rainfall": 18159}


def test_datasets_table_for_people(tmp_path):
    result = run(["datasets"], tmp_path)
    assert result.returncode == 0
    assert "48,842" in result.stdout and "mnist5k" in result.stdout


def test_data_show_builtin_and_file(tmp_path):
    shown = json.loads(run(["data", "show", "adult", "--json"], tmp_path).stdout)
    assert shown["rows"] == 48842 and shown["target"] == "income"
    assert shown["class_balance"] == {"<=50K": 37155, ">50K": 11687}
    assert shown["splits"] == {"train": 32561, "test": 16281}
    workclass = next(c for c in shown["column_summaries"] if c["name"] == "workclass")
    assert workclass["missing"] == 2799
    csv = tmp_path / "mine.csv"
    csv.write_text("a,b\n1,x\n2,y\n3,x\n")
    result = run(["data", "show", str(csv), "--target", "b"], tmp_path)
    assert result.returncode == 0 and "mine" in result.stdout and "x: 2" in result.stdout


def test_malformed_csv_is_one_line_and_the_data_error_code(tmp_path):
    csv = tmp_path / "bad.csv"
    csv.write_text("a,b\n1,2\n3,4,5\n")
    result = run(["data", "show", str(csv)], tmp_path)
    assert result.returncode == DataError.exit_code
    assert result.stderr.strip().count("\n") == 0
    assert "bad.csv line 3: expected 2 fields, saw 3" in result.stderr
    assert "Traceback" not in result.stderr


def test_errors_under_json_are_a_json_object_on_stdout(tmp_path):
    result = run(["data", "show", "adlt", "--json"], tmp_path)
    assert result.returncode == DatasetNotFound.exit_code
    body = json.loads(result.stdout)
    assert body["error"] == "DatasetNotFound" and body["details"]["close_matches"] == ["adult"]


def test_config_with_unknown_key_names_it(tmp_path):
    (tmp_path / "amploop.yaml").write_text("train:\n  epochz: 3\n")
    result = run(["config", "show"], tmp_path)
    assert result.returncode == ConfigError.exit_code
    assert "train.epochz" in result.stderr and "unknown key" in result.stderr
    explicit = run(["--config", str(tmp_path / "amploop.yaml"), "demo"], tmp_path, cwd=Path("/"))
    assert explicit.returncode == ConfigError.exit_code and "train.epochz" in explicit.stderr


def test_config_show_merges_environment(tmp_path):
    result = run(["config", "show", "--json"], tmp_path, {"AMPLOOP_TRAIN__EPOCHS": "9"})
    assert result.returncode == 0 and json.loads(result.stdout)["train"]["epochs"] == 9


def test_unreachable_database_is_a_store_error_with_the_password_masked(tmp_path):
    url = "postgresql+psycopg://bob:hunter2@127.0.0.1:1/amploop"
    result = run(["store", "info"], tmp_path, {"AMPLOOP_DB_URL": url})
    assert result.returncode == StoreError.exit_code
    assert "bob:***@127.0.0.1:1/amploop" in result.stderr and "hunter2" not in result.stderr


def test_store_info_on_a_fresh_home(tmp_path):
    result = run(["store", "info", "--json"], tmp_path)
    info = json.loads(result.stdout)
    assert info["backend"] == "sqlite" and info["schema_revision"] == "0006"
    assert info["home"] == str(tmp_path / ".amploop")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_demo_runs_to_the_end_and_records_the_datasets(tmp_path, backend, request, browser):
    extra = {}
    if backend == "postgresql":
        extra["AMPLOOP_DB_URL"] = request.getfixturevalue("pg_url")
    result = run(["demo", "--short", "--no-ui", "--json"], tmp_path, extra, timeout=900)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert [s["stage"] for s in out["stages"]] == [
        "data",
        "quality",
        "train",
        "evaluate",
        "promote",
        "predict",
        "serve",
        "loop",
    ]
    scored, served, story = out["stages"][5], out["stages"][6], out["stages"][7]
    # rainfall through the server with the loop watching: the alarm falls where the series changes,
    # a retrained model is promoted after it, and the windows it serves are right more often
    windows = story["windows"]
    assert story["traffic_rows"] == 6500 and len(windows) == 13
    assert [w["first_row"] for w in windows] == list(range(8000, 14_500, 500))
    assert 11_500 <= story["first_alarm_row"] <= 13_000, story["first_alarm"]
    assert story["first_alarm"]["severity"] == "critical"
    assert story["first_promotion_row"] is not None and story["champion"] > story["first_version"]
    assert story["decisions"].count("promoted") >= 1 and story["retrains"] <= 6
    recovered = story["accuracy"]
    assert recovered["after_promotion"] > recovered["after_change_before_promotion"] + 0.03, recovered
    served_after = [w for w in windows if w["first_row"] >= story["first_promotion_row"]]
    assert all(w["served_by"] != ["rainfall:1"] for w in served_after)  # the server swapped the new champion in
    page = Path(story["html"]).read_text()
    assert "<svg" in page and "promoted" in page and "<script" not in page
    assert scored["rows"] == 20_000 and scored["model_version"] == "adult:1" and Path(scored["output"]).exists()
    traffic = served["traffic"]
    assert served["version"] == "adult:1" and traffic["requests"] > 0 and traffic["errors"] == 0
    assert set(traffic["statuses"]) == {"200"}
    assert served["logged"] >= traffic["requests"]  # every answer is logged, the warm-up's too
    promoted = out["stages"][4]
    assert (promoted["alias"], promoted["from_version"], promoted["to_version"]) == ("champion", None, 1)
    assert Path(promoted["card"]).exists() and promoted["card"].endswith(".html")
    quality = out["stages"][1]
    assert quality["counts"]["block"] == 0 and quality["suspicious_rows"] > 0
    evaluated = out["stages"][3]
    # three epochs pass the default gate, and the demo promoted the version because of it
    assert evaluated["verdict"] == "pass" and Path(evaluated["report"]).exists()
    assert "skipped" not in promoted
    trained = out["stages"][2]
    assert trained["model"]["name"] == "adult" and trained["metrics"]["test_accuracy"] >= 0.84
    assert trained["precision_reason"]
    assert {d["name"]: d["rows"] for d in out["datasets"]} == {
        "adult": 48842,
        "mnist5k": 5000,
        "rainfall": 18159,
    }
    # the three built-in datasets, adult's train, validation and test rows, the same four of rainfall's early
    # days, and four for each retrain's derived training set
    counts = out["store"]["counts"]
    assert counts["datasets"] == 10 + 4 * story["retrains"] and out["store"]["backend"] == backend
    assert counts["model_versions"] == 2 + story["retrains"]  # adult, rainfall, and each challenger
    assert counts["drift_reports"] == len(windows) and counts["alerts"] > 0
    assert counts["loop_decisions"] == len(story["decisions"])
    again = json.loads(run(["demo", "--short", "--no-ui", "--json"], tmp_path, extra, timeout=900).stdout)
    assert again["stages"][2]["model"]["version"] == 2
    assert again["stages"][3]["verdict"] == "pass"  # no worse than the champion, version 1
    assert again["stages"][4]["from_version"] == 1 and again["stages"][4]["to_version"] == 2
    # the stored evaluations agree with their rules: "pass" exactly when no rule failed
    workspace = Workspace.from_env({"AMPLOOP_HOME": str(tmp_path / ".amploop"), **extra})
    with Store.open(workspace) as store:
        evaluations = [store.list_evaluations("adult", version) for version in (1, 2)]
        recorded = [d for d in store.list_datasets() if "/loop/" not in d.source]
    assert len(recorded) == 10  # recording the built-in data and the early days again adds nothing
    assert [len(e) for e in evaluations] == [1, 1]
    for [evaluation], shown in zip(evaluations, (out, again), strict=True):
        verdict = evaluation.report["verdict"]
        outcomes = {r["metric"]: r["outcome"] for r in verdict["rules"]}
        assert "fail" not in outcomes.values() and evaluation.passed
        assert verdict["verdict"] == shown["stages"][3]["verdict"] == "pass"
    assert outcomes["champion_delta"] == "pass"  # version 2 was compared with the champion, version 1
    # the dashboard over the demo's store, in chromium: its models, each with its champion and health in words
    champion = again["stages"][7]["champion"]
    with Store.open(workspace) as store, background_ui(store, AmploopConfig()) as url:
        page = browser.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(url + "/")
        card = page.locator("section.card", has_text="rainfall").inner_text()
        assert f"live: version {champion}" in card and "adult" in page.inner_text("main")
        assert any(word in card for word in ("healthy", "watch", "needs action"))
        page.get_by_role("link", name="rainfall", exact=True).click()
        page.wait_for_load_state("load")
        assert "promoted" in page.inner_text("main") and errors == []
        page.close()


def test_usage_errors_exit_2(tmp_path):
    assert run(["data", "show"], tmp_path).returncode == 2
    assert run(["no-such-command"], tmp_path).returncode == 2
