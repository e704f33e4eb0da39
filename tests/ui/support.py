"""A real `morphml-server` with real `morphml-worker` processes, and headless Chromium driven by
Selenium through Debian's chromium-driver, for the dashboard's browser tests."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from morphml import Layer, SearchSpace
from morphml.cli.processes import Processes, free_port, script, wait_ready
from morphml.client import Client

ADMIN_TOKEN = "ui-admin-token-0123456789"
WORKER_TOKEN = "ui-worker-token-0123456789"
# A name a careless page would turn into markup and run.
HOSTILE_NAME = "<img src=x onerror=\"document.title='pwned'\"><script>alert(1)</script>"
T = TypeVar("T")


def find_chromium() -> tuple[str, str]:
    """Debian's chromium and chromium-driver (`.ci/run` installs them); skips without them
    (failing under CI=true, tests/conftest.py)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.skip("needs chromium and chromium-driver (apt-get install chromium chromium-driver)")
    return browser, driver


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium session, quit afterwards."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = find_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        "--disable-extensions",
        "--no-first-run",
        "--disable-background-networking",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def digits_space() -> dict[str, Any]:
    """An MLP space on scikit-learn's 8x8 digits: a candidate trains in well under a second."""
    return (
        SearchSpace("digits-mlp")
        .add_layers(
            Layer.input(shape=(64,)),
            Layer.dense(units=[8, 16, 32, 64]),
            Layer.activation(["relu", "tanh", "gelu"]),
            Layer.dropout(rate=[0.0, 0.2], optional=True),
            Layer.output(units=10),
        )
        .to_dict()
    )


def long_space() -> dict[str, Any]:
    """Digits MLPs with two hidden layers: 576 candidates, so an experiment of a few hundred
    evaluations stays running for minutes (warm workers exhaust `digits_space` in seconds)."""
    units = [8, 16, 24, 32, 48, 64, 96, 128]
    return (
        SearchSpace("digits-mlp-2")
        .add_layers(
            Layer.input(shape=(64,)),
            Layer.dense(units=units),
            Layer.activation(["relu", "tanh", "gelu"]),
            Layer.dense(units=units),
            Layer.dropout(rate=[0.0, 0.2], optional=True),
            Layer.output(units=10),
        )
        .to_dict()
    )


def train_spec(name: str, evaluations: int, **overrides: Any) -> dict[str, Any]:
    """Real training on digits, an accuracy per epoch (learning curves), a median pruner."""
    spec = {
        "name": name,
        "search_space": digits_space(),
        "optimizer": {"name": "random", "params": {}},
        "objectives": [{"metric": "val_accuracy", "direction": "maximize"}],
        "evaluator": {
            "kind": "train",
            "params": {"dataset": "digits", "epochs": 6, "batch_size": 32, "lr": 0.01},
        },
        "pruner": {"name": "median", "params": {"warmup_steps": 1, "min_tasks": 3}},
        "budget": {"max_evaluations": evaluations},
        "parallelism": 4,
        "lease_seconds": 20,
        "seed": 1,
    }
    return {**spec, **overrides}


def pareto_spec(name: str, evaluations: int) -> dict[str, Any]:
    """Two objectives (accuracy up, size down) on the same real training."""
    return train_spec(
        name,
        evaluations,
        objectives=[
            {"metric": "val_accuracy", "direction": "maximize"},
            {"metric": "num_params", "direction": "minimize"},
        ],
        pruner=None,
        evaluator={"kind": "train", "params": {"dataset": "digits", "epochs": 2, "lr": 0.01}},
    )


class Cluster:
    """A server (tokens optional) and workers on loopback, stopped together."""

    def __init__(self, run_dir: Path, database_url: str, *, tokens: bool, workers: int) -> None:
        self.run_dir = run_dir
        self.database_url = database_url
        self.tokens = tokens
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes = Processes(run_dir / "logs")
        self.workers = workers

    def start(self) -> None:
        env = {"MORPHML_REAPER_INTERVAL_SECONDS": "1"}
        if self.tokens:
            env |= {"MORPHML_ADMIN_TOKEN": ADMIN_TOKEN, "MORPHML_WORKER_TOKEN": WORKER_TOKEN}
        serve = [script("morphml-server"), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self.processes.start("server", [*serve, "--database-url", self.database_url], env)
        wait_ready(self.url, self.processes)
        for index in range(self.workers):
            argv = [script("morphml-worker"), "--server", self.url, "--name", f"ui-worker-{index}"]
            argv += ["--slots", "2", "--gpus", "none", "--poll-seconds", "2"]
            argv += ["--work-dir", str(self.run_dir / f"worker-{index}")]
            argv += ["--labels", f"rack=r{index},zone=<b>z</b>"]
            if self.tokens:
                argv += ["--token", WORKER_TOKEN]
            self.processes.start(f"worker-{index}", argv, {"MORPHML_TORCH_THREADS": "1"})

    def client(self) -> Client:
        return Client(self.url, token=ADMIN_TOKEN if self.tokens else None)

    def stop(self) -> None:
        self.processes.stop_all(grace=5.0)


def wait_for(condition: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll until `condition()` is truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def screenshot_dir() -> Path:
    """Where the run writes its screenshots: $UI_SCREENSHOT_DIR, else build/ui-screenshots
    (git ignores build/; docs/screenshots holds the committed copies the README shows)."""
    root = Path(__file__).resolve().parents[2]
    target = Path(os.environ.get("UI_SCREENSHOT_DIR") or root / "build" / "ui-screenshots")
    target.mkdir(parents=True, exist_ok=True)
    return target
