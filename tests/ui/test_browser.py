"""The dashboard in headless Chromium against a real `morphml-server` and real `morphml-worker`
processes training on scikit-learn's digits, on SQLite (with tokens: the browser asks for the
admin token) and on Postgres (auth off). One cluster and one browser per database.

Each page renders its data, live updates arrive while an experiment runs, pause/resume/cancel
work from the UI, nothing loads from another host, errors are shown, and a screenshot of each
page is written (tests/ui/support.py: `screenshot_dir`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from morphml.client import Client
from tests.server.support import fresh_postgres_database, require_postgres
from tests.ui.support import (
    ADMIN_TOKEN,
    HOSTILE_NAME,
    Cluster,
    chromium,
    long_space,
    pareto_spec,
    screenshot_dir,
    train_spec,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

STATIC = Path(__file__).resolve().parents[2] / "server" / "ui" / "static"


class Dashboard:
    """The cluster, its experiments and one browser on it."""

    def __init__(self, cluster: Cluster, driver: Any, database: str) -> None:
        self.cluster, self.driver, self.database = cluster, driver, database
        self.client: Client = cluster.client()
        self.finished = self.client.create_experiment(train_spec(HOSTILE_NAME, 12)).id
        self.pareto = self.client.create_experiment(pareto_spec("size-vs-accuracy", 10)).id
        self.live = -1

    def start_live(self) -> int:
        """A long experiment, submitted once the others are done (workers are free for it)."""
        spec = train_spec("live", 400, parallelism=2, pruner=None, search_space=long_space())
        self.live = self.client.create_experiment(spec).id
        return self.live

    def open(self, path: str) -> None:
        self.driver.get(self.cluster.url + path)
        if self.cluster.tokens:
            self._enter_token_when_asked()

    def _enter_token_when_asked(self) -> None:
        def asked_or_loaded() -> str | None:
            state: str | None = self.driver.execute_script(
                "const d = document.getElementById('token-dialog');"
                "if (d && d.open) return 'asked';"
                "const live = document.getElementById('live');"
                "if (live && live.className.includes('ok')) return 'loaded';"
                "const banner = document.getElementById('banner');"
                "return banner && !banner.hidden ? 'loaded' : null;"
            )
            return state

        if wait_for(asked_or_loaded, 20, "the page to load or ask for the token") == "asked":
            self.driver.find_element("id", "token-input").send_keys(ADMIN_TOKEN)
            self.driver.find_element("id", "token-save").click()

    def click(self, selector: str) -> None:
        """Click, again if a refresh replaced the element in between (the pages re-render)."""
        from selenium.common.exceptions import StaleElementReferenceException

        for _ in range(10):
            try:
                self.driver.find_element("css selector", selector).click()
                return
            except StaleElementReferenceException:
                continue
        raise AssertionError(f"{selector} kept being replaced")

    def js(self, script: str) -> Any:
        return self.driver.execute_script(script)

    def count(self, selector: str) -> int:
        return int(self.js(f"return document.querySelectorAll({selector!r}).length"))

    def text(self, selector: str) -> str:
        return str(
            self.js(
                f"const e = document.querySelector({selector!r}); return e ? e.textContent : ''"
            )
        )

    def screenshot(self, name: str) -> Path:
        """The whole page (the window grown to its height), as <name>-<database>.png."""
        self.js("window.scrollTo(0, 0)")
        height = int(self.js("return document.documentElement.scrollHeight"))
        self.driver.set_window_size(1400, max(900, min(height + 20, 6000)))
        path = screenshot_dir() / f"{name}-{self.database}.png"
        assert self.driver.save_screenshot(str(path))
        self.driver.set_window_size(1400, 1000)
        return path

    def no_external_resources(self) -> None:
        origin = self.cluster.url
        loaded = self.js("return performance.getEntriesByType('resource').map(e => e.name)")
        referenced = self.js(
            "return [...document.querySelectorAll('[src],[href]')]"
            ".map(e => e.src || e.href).filter(u => typeof u === 'string')"
        )
        for url in [*loaded, *referenced]:
            assert url.startswith(origin) or url.startswith(("data:", "about:")), url

    def done(self, experiment_id: int) -> bool:
        return self.client.experiment(experiment_id).status == "completed"


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def dashboard(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Dashboard]:
    run_dir = tmp_path_factory.mktemp(f"ui-{request.param}")
    with _database(request.param, run_dir) as url:
        cluster = Cluster(run_dir, url, tokens=request.param == "sqlite", workers=2)
        cluster.start()
        try:
            with chromium() as driver:
                board = Dashboard(cluster, driver, request.param)
                yield board
                board.client.close()
        finally:
            cluster.stop()


def _database(kind: str, run_dir: Path) -> Any:
    if kind == "sqlite":
        from contextlib import nullcontext

        return nullcontext(f"sqlite:///{run_dir / 'morphml.db'}")
    require_postgres()
    return fresh_postgres_database()


def test_experiments_page(dashboard: Dashboard) -> None:
    dashboard.open("/ui/")
    wait_for(lambda: dashboard.count("#experiments tbody tr") == 2, 30, "two experiment rows")
    # The hostile name is text in the table, not markup: no image, no script ran.
    assert HOSTILE_NAME in dashboard.text(
        f'#experiments tr[data-id="{dashboard.finished}"] td.name'
    )
    assert dashboard.count("#experiments img") == 0
    assert dashboard.js("return document.title") == "Experiments · MorphML"
    wait_for(
        lambda: dashboard.done(dashboard.finished) and dashboard.done(dashboard.pareto),
        240,
        "both experiments to complete",
    )
    wait_for(
        lambda: "12 / 12" in dashboard.text(f'tr[data-id="{dashboard.finished}"] .progress'),
        20,
        "the progress to update without a reload",
    )
    best = dashboard.client.best(dashboard.finished).metrics["val_accuracy"]
    shown = dashboard.text(f'tr[data-id="{dashboard.finished}"] td.num')
    assert shown.startswith(f"{best:.4f}".rstrip("0")[:5])
    dashboard.no_external_resources()
    dashboard.screenshot("experiments")


def test_experiment_page_draws_its_data(dashboard: Dashboard) -> None:
    experiment = dashboard.client.experiment(dashboard.finished)
    dashboard.open(f"/ui/experiments/{dashboard.finished}")
    completed = experiment.counts["completed"]
    wait_for(
        lambda: dashboard.count("#convergence .pt.evaluation") == completed,
        30,
        f"{completed} convergence points",
    )
    assert dashboard.count("#convergence .series.best path") == 1
    wait_for(lambda: dashboard.count("#task-table tbody tr") == 12, 20, "the task table")
    assert dashboard.count("#importance figure.variable") >= 2
    assert dashboard.count("#importance .pc-line") == completed
    assert dashboard.count("#curves .curve path") >= 1  # reports per epoch
    # Server-side sorting: by value, best first.
    dashboard.click('th[data-sort="value"]')
    wait_for(lambda: "▼" in dashboard.text('th[data-sort="value"]'), 10, "the sorted header")
    values = dashboard.js(
        "return [...document.querySelectorAll('#task-table tbody tr td:nth-child(3)')]"
        ".map(td => parseFloat(td.textContent))"
    )
    finite = [v for v in values if v == v]
    assert finite == sorted(finite, reverse=True) and finite[0] == pytest.approx(
        experiment.best.value, abs=1e-4
    )
    # Filtering by state happens on the server too.
    from selenium.webdriver.support.ui import Select

    select = Select(dashboard.driver.find_element("id", "state-filter"))
    select.select_by_value("failed")
    wait_for(lambda: dashboard.count("#task-table-empty") == 1, 10, "no failed task")
    assert HOSTILE_NAME in dashboard.text("#summary h1")
    assert dashboard.js("return document.title") != "pwned"
    dashboard.no_external_resources()
    select.select_by_value("")
    wait_for(lambda: dashboard.count("#task-table tbody tr") == 12, 10, "every task again")
    dashboard.screenshot("experiment")


def test_pareto_front(dashboard: Dashboard) -> None:
    dashboard.open(f"/ui/experiments/{dashboard.pareto}")
    front = dashboard.client.pareto(dashboard.pareto).data
    wait_for(
        lambda: dashboard.count("#pareto .pt.front") == len(front),
        30,
        f"{len(front)} points on the front",
    )
    completed = dashboard.client.experiment(dashboard.pareto).counts["completed"]
    assert dashboard.count("#pareto .pt") == completed
    drawn = {
        int(x)
        for x in dashboard.js(
            "return [...document.querySelectorAll('#pareto .pt.front')].map(p => p.dataset.task)"
        )
    }
    assert drawn == {task.id for task in front}
    dashboard.screenshot("experiment-pareto")


def test_task_page(dashboard: Dashboard) -> None:
    best = dashboard.client.best(dashboard.finished)
    from morphml.architecture import Architecture

    architecture = Architecture.from_dict(best.candidate["architecture"])
    dashboard.open(f"/ui/tasks/{best.id}")
    wait_for(
        lambda: dashboard.count("#graph svg.dag .node") == len(architecture.nodes),
        20,
        "the architecture's nodes",
    )
    assert dashboard.count("#graph svg.dag .edge") == sum(
        len(n.inputs) for n in architecture.nodes.values()
    )
    ops = dashboard.js(
        "return [...document.querySelectorAll('#graph .node text.op')].map(t => t.textContent)"
    )
    assert [op.split()[0] for op in ops] == [architecture.nodes[n].op for n in architecture.order]
    assert dashboard.text("#source-code") == architecture.to_pytorch_source()
    assert re.search(r"\d", dashboard.text('[data-fact="params"] .value'))
    kinds = dashboard.js(
        "return [...document.querySelectorAll('#timeline li')].map(l => l.dataset.kind)"
    )
    assert kinds[0] == "created" and "claimed" in kinds and kinds[-1] == "completed"
    assert "ui-worker-" in dashboard.text("#timeline")
    dashboard.driver.find_element("id", "copy-source").click()
    wait_for(lambda: dashboard.text("#copy-status"), 5, "the copy button to answer")
    dashboard.no_external_resources()
    dashboard.screenshot("task")


def test_workers_page(dashboard: Dashboard) -> None:
    dashboard.open("/ui/workers")
    wait_for(
        lambda: dashboard.count('#workers tr[data-status="online"]') == 2, 30, "two online workers"
    )
    assert "zone=<b>z</b>" in dashboard.text("#workers")  # a label is text, never markup
    assert dashboard.count("#workers b") == 0
    names = dashboard.text("#workers")
    assert "ui-worker-0" in names and "ui-worker-1" in names
    dashboard.no_external_resources()
    dashboard.screenshot("workers")


def test_live_updates_and_lifecycle_from_the_ui(dashboard: Dashboard) -> None:
    live = dashboard.start_live()
    dashboard.open(f"/ui/experiments/{live}")

    def completed_shown() -> int:
        text = dashboard.text('[data-fact="count-completed"] .value')
        return int(text) if text.isdigit() else -1

    wait_for(lambda: completed_shown() >= 1, 90, "a first result")
    first = completed_shown()
    points = dashboard.count("#convergence .pt.evaluation")
    # No reload: the page polls; more results arrive on the same page.
    wait_for(lambda: completed_shown() > first, 60, "a result to arrive while the page is open")
    wait_for(lambda: dashboard.count("#convergence .pt.evaluation") > points, 20, "a new point")
    dashboard.screenshot("experiment-live")

    dashboard.click('button[data-action="pause"]')
    wait_for(lambda: dashboard.client.experiment(live).status == "paused", 20, "paused")
    wait_for(lambda: dashboard.text("#summary .badge") == "paused", 20, "the paused badge")
    dashboard.open("/ui/")
    row = f'#experiments tr[data-id="{live}"]'
    wait_for(lambda: dashboard.count(f'{row} button[data-action="resume"]') == 1, 20, "resume")
    dashboard.click(f'{row} button[data-action="resume"]')
    wait_for(lambda: dashboard.client.experiment(live).status == "running", 20, "running")
    wait_for(lambda: dashboard.count(f'{row} button[data-action="cancel"]') == 1, 20, "cancel")
    dashboard.click(f'{row} button[data-action="cancel"]')
    dashboard.driver.switch_to.alert.accept()
    wait_for(lambda: dashboard.client.experiment(live).status == "cancelled", 20, "cancelled")
    wait_for(lambda: dashboard.count(f"{row} button") == 0, 20, "no action left")


def test_errors_are_shown_not_a_blank_page(dashboard: Dashboard) -> None:
    dashboard.open("/ui/experiments/999999")
    wait_for(lambda: dashboard.count(".error-card") == 1, 20, "the error card")
    assert "experiment 999999 not found" in dashboard.text(".error-card")
    assert "404" in dashboard.text("#banner")
    dashboard.open("/ui/tasks/999999")
    wait_for(lambda: "task 999999 not found" in dashboard.text(".error-card"), 20, "task error")
    dashboard.screenshot("error")


def test_a_wrong_token_is_asked_again(dashboard: Dashboard) -> None:
    if not dashboard.cluster.tokens:
        return  # the Postgres cluster runs with auth off: nothing to ask (the SQLite one has it)
    dashboard.open("/ui/workers")
    dashboard.js("sessionStorage.setItem('morphml-admin-token', 'not-the-token-at-all')")
    dashboard.driver.get(dashboard.cluster.url + "/ui/workers")
    wait_for(
        lambda: dashboard.js("return document.getElementById('token-dialog').open"),
        20,
        "the token dialog",
    )
    assert "refused" in dashboard.text("#token-reason")
    dashboard.driver.find_element("id", "token-input").send_keys(ADMIN_TOKEN)
    dashboard.driver.find_element("id", "token-save").click()
    wait_for(lambda: dashboard.count("#workers tbody tr") == 2, 20, "the workers after the token")


def test_the_static_files_name_no_other_host() -> None:
    for path in STATIC.iterdir():
        text = path.read_text(encoding="utf-8")
        hosts = re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text)
        assert set(hosts) <= {"http://www.w3.org"}, (path.name, hosts)  # the SVG namespace
