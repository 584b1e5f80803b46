"""The dashboard in Debian's chromium over a real uvicorn server and a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from amploop.config import AmploopConfig, EvaluateConfig, ModelConfig, TrainConfig
from amploop.monitor.windows import monitor_model
from amploop.registry import Store
from amploop.registry.aliases import promote
from amploop.registry.evaluations import evaluate_version
from amploop.registry.training import train_version
from amploop.serve.auth import create_api_key
from amploop.ui.server import background_ui
from tests.monitor.test_windows import give_labels, log_rows
from tests.serve.conftest import MODEL, plants_on, plants_table

PAGES = [
    "/",
    f"/models/{MODEL}",
    f"/models/{MODEL}/monitoring",
    f"/models/{MODEL}/loop",
    f"/models/{MODEL}/versions/1/evaluation",
    f"/models/{MODEL}/versions/1/card",
    "/login",
]
WIDTHS = (1280, 390)
ARTIFACTS = Path(os.environ.get("AMPLOOP_TEST_ARTIFACTS", "test-artifacts")) / "dashboard"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """plants:1 (evaluated, champion) and plants:2 (evaluated); monitored traffic with labels; loop decisions."""
    tmp = tmp_path_factory.mktemp(f"ui-{request.param}")
    with plants_on(request.param, tmp) as ws, Store.open(ws) as store:
        config = AmploopConfig(
            data={"target": "kind"},
            model=ModelConfig(name=MODEL),
            train=TrainConfig(epochs=4, batch_size=32, learning_rate=0.01, precision="fp32", seed=1),
            evaluate=EvaluateConfig(robustness=False, bootstrap_samples=100),
        )
        plants_table(600, seed=0).to_csv(tmp / "plants-2.csv", index=False)
        train_version(config, dataset=str(tmp / "plants-2.csv"), store=store)  # plants:2, another seed
        for version in (1, 2):
            evaluate_version(f"{MODEL}:{version}", config, store=store)
        rows = plants_table(400, seed=5)
        rows.loc[200:, "length"] += 4.0  # the second half's inputs moved
        ids = log_rows(store, rows)
        give_labels(store, ids, list(rows["kind"]))
        monitor_model(MODEL, window=200, store=store)
        store.record_loop_decision(MODEL, "blocked", reasons=["test: inputs drifted", "loop.enabled is false"])
        operator = create_api_key(store, role="operator", name="owner")
        reader = create_api_key(store, role="reader", name="viewer")
        with background_ui(store, config) as url:
            yield {"url": url, "ws": ws, "operator": operator.token, "reader": reader.token}


def load(browser: Any, url: str, width: int) -> tuple[Any, list[str]]:
    """Open ``url`` at ``width``: the page and every console error, page error, failed or 4xx/5xx request."""
    page = browser.new_page()  # a browser (a fresh context) or a context (its cookies: signed in)
    page.set_viewport_size({"width": width, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
    page.on("response", lambda r: problems.append(f"{r.status}: {r.url}") if r.status >= 400 else None)
    page.goto(url)
    page.wait_for_load_state("load")
    return page, problems


def sign_in(page: Any, site: dict[str, Any], token: str) -> None:
    page.goto(site["url"] + "/login")
    page.get_by_label("API key").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("load")


def datasheet_path(site: dict[str, Any]) -> str:
    with Store.open(site["ws"]) as store:
        from amploop.registry.lineage import lineage

        return f"/datasets/{lineage(store, MODEL, 1)['data']['source']['fingerprint']}/datasheet"


def test_every_page_loads_cleanly_at_both_widths_and_passes_axe(site, browser, request):
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    backend = request.node.callspec.params["site"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    signed = browser.new_context()  # an operator's pages: the confirmation step and the action links
    signer = signed.new_page()
    sign_in(signer, site, site["operator"])
    signer.close()
    operator_pages = [f"/models/{MODEL}", f"/models/{MODEL}/promote/2"]  # rollback's: in the rollback test
    visits = [(browser, p) for p in [*PAGES, datasheet_path(site)]] + [(signed, p) for p in operator_pages]
    for opener, path in visits:
        for width in WIDTHS:
            page, problems = load(opener, site["url"] + path, width)
            assert problems == [], (path, width, problems)
            assert page.locator("h1").count() >= 1
            name = re.sub(r"[^a-z0-9]+", "-", path.strip("/"))[:60] or "overview"
            name += "-operator" if opener is signed else ""
            page.screenshot(path=str(ARTIFACTS / f"{backend}-{name}-{width}.png"), full_page=True)
            if width == WIDTHS[0]:
                found = axe.run(page).response["violations"]
                serious = [
                    (v["id"], v["impact"], len(v["nodes"])) for v in found if v["impact"] in ("serious", "critical")
                ]
                assert serious == [], (path, serious)
            scroll = page.evaluate("document.documentElement.scrollWidth")
            assert scroll <= width + 1, (path, width, scroll)  # no sideways scrolling of the whole page
            page.close()
    signed.close()


def test_the_overview_names_each_model_its_champion_and_its_health_in_words(site, browser):
    page, problems = load(browser, site["url"] + "/", 1280)
    card = page.locator("section.card", has_text=MODEL)
    text = card.inner_text()
    assert "live: version 1" in text and "2 versions" in text
    badge = card.locator(".badge").inner_text()
    assert badge.split()[-1] in ("healthy", "watch", "action") and ("!" in badge or "✓" in badge or "✕" in badge)
    assert "length" in text  # the drifted column, named in the reason
    assert "blocked" in text and "test: inputs drifted" in text  # the loop's last decision
    monitoring, _ = load(browser, site["url"] + f"/models/{MODEL}/monitoring", 1280)
    assert "length is higher than during training" in monitoring.inner_text("main")
    assert monitoring.locator("svg.chart").count() == 2
    page.close()
    monitoring.close()


def test_a_rollback_through_the_dashboard_moves_the_champion_and_is_audited(site, browser):
    with Store.open(site["ws"]) as store:
        promote(store, MODEL, 2, reason="test: the newer version", actor="test")
    page, problems = load(browser, site["url"] + f"/models/{MODEL}", 1280)
    assert page.get_by_role("link", name="Roll back the champion…").count() == 0  # only for a signed-in operator
    sign_in(page, site, site["operator"])
    page.goto(site["url"] + f"/models/{MODEL}")
    page.get_by_role("link", name="Roll back the champion…").click()
    page.wait_for_load_state("load")
    assert "will move from v2 to v1" in page.inner_text("main")
    page.get_by_label("Why? (kept with the move)").fill("the newer version misreads long ferns")
    page.get_by_role("button", name="Roll back to v1").click()
    page.wait_for_load_state("load")
    assert "champion moved from v2 to v1" in page.inner_text("main")
    assert "the newer version misreads long ferns" in page.inner_text("main")  # in the alias history
    assert problems == []
    with Store.open(site["ws"]) as store:
        assert store.alias_version(MODEL, "champion") == 1
        entry = [e for e in store.audit_log() if e.action == "model.alias"][-1]
        assert entry.actor == "ui:owner" and "the newer version misreads long ferns" in entry.reason
    page.close()


def test_an_action_without_sign_in_with_a_reader_key_or_a_wrong_csrf_token_is_refused(site, browser):
    with Store.open(site["ws"]) as store:
        champion = store.alias_version(MODEL, "champion")
        moves = len(store.audit_log())
    target = 2 if champion == 1 else 1
    url = site["url"] + f"/models/{MODEL}/promote/{target}"
    with httpx.Client() as client:
        anonymous = client.post(url, data={"reason": "no one signed in", "csrf": "x"})
        assert anonymous.status_code == 401 and "sign in" in anonymous.text.lower()
        assert client.get(url).status_code == 401
    with httpx.Client(base_url=site["url"]) as client:  # a reader may look, not act
        client.post("/login", data={"api_key": site["reader"]})
        refused = client.post(f"/models/{MODEL}/promote/{target}", data={"reason": "reader", "csrf": "x"})
        assert refused.status_code == 403
    with httpx.Client(base_url=site["url"]) as client:
        signed = client.post("/login", data={"api_key": site["operator"]})
        assert signed.status_code == 303 and "amploop_session" in signed.headers["set-cookie"]
        assert "httponly" in signed.headers["set-cookie"].lower()
        forged = client.post(f"/models/{MODEL}/promote/{target}", data={"reason": "forged", "csrf": "0" * 64})
        assert forged.status_code == 403 and "did not come from this dashboard" in forged.text
        missing = client.post(f"/models/{MODEL}/promote/{target}", data={"reason": "no token"})
        assert missing.status_code == 403
        wrong_key = client.post("/login", data={"api_key": "amp_nothing_here"})
        assert wrong_key.status_code == 401
        huge = client.post(
            "/login", content=b"api_key=" + b"a" * 20_000, headers={"content-type": "application/x-www-form-urlencoded"}
        )
        assert huge.status_code == 413
    with Store.open(site["ws"]) as store:
        assert store.alias_version(MODEL, "champion") == champion  # nothing moved
        assert [e.action for e in store.audit_log()[moves:]].count("model.alias") == 0


def test_a_promotion_through_the_dashboard_respects_the_release_gate(site, browser):
    page, _ = load(browser, site["url"] + "/", 1280)
    sign_in(page, site, site["operator"])
    with Store.open(site["ws"]) as store:
        champion = store.alias_version(MODEL, "champion")
    target = 2 if champion == 1 else 1
    page.goto(site["url"] + f"/models/{MODEL}/promote/{target}")
    assert f"will move from v{champion} to v{target}" in page.inner_text("main")
    assert "passed its release gate" in page.inner_text("main")
    page.get_by_label("Why? (kept with the move)").fill("back to the other one")
    page.get_by_role("button", name=f"Promote v{target}").click()
    page.wait_for_load_state("load")
    assert f"champion moved from v{champion} to v{target}" in page.inner_text("main")
    page.goto(site["url"] + f"/models/{MODEL}/promote/99")
    assert "99" in page.inner_text("main") and page.locator(".problem").count() == 1  # no such version: said so
    page.close()
