"""Settings: flags over MORPHML_WORKER_* variables, labels and allow-lists, clear errors."""

from __future__ import annotations

import pytest

from worker.cli import load_settings, main
from worker.config import parse_labels


def test_environment_variables_configure_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MORPHML_WORKER_SERVER", "http://10.0.0.5:8000/")
    monkeypatch.setenv("MORPHML_WORKER_TOKEN", "t0k")
    monkeypatch.setenv("MORPHML_WORKER_LABELS", "zone=a, gpu=h200")
    monkeypatch.setenv("MORPHML_WORKER_ALLOW", "mypkg,other.mod")
    monkeypatch.setenv("MORPHML_WORKER_SLOTS", "2")
    settings = load_settings([])
    assert settings.server == "http://10.0.0.5:8000" and settings.token == "t0k"
    assert settings.labels == {"zone": "a", "gpu": "h200"}
    assert settings.allow == ["mypkg", "other.mod"] and settings.slots == 2


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MORPHML_WORKER_SERVER", "http://a:1")
    monkeypatch.setenv("MORPHML_WORKER_GPUS", "none")
    settings = load_settings(
        ["--server", "http://b:2", "--gpus", "0,1", "--allow", "x", "y,z", "--allow", "w",
         "--labels", "k=v", "--grace-seconds", "3"]
    )  # fmt: skip
    assert settings.server == "http://b:2" and settings.gpus == "0,1"
    assert settings.allow == ["x", "y", "z", "w"] and settings.labels == {"k": "v"}
    assert settings.grace_seconds == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "server (--server or MORPHML_WORKER_SERVER): Field required"),
        (["--server", "10.0.0.5:8000"], "http:// or https://"),
        (["--server", "http://a", "--labels", "novalue"], "key=value"),
        (["--server", "http://a", "--slots", "0"], "slots"),
    ],
)
def test_bad_settings_exit_with_a_clear_message(argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert message in str(exited.value.code)


def test_parse_labels() -> None:
    assert parse_labels("") == {}
    assert parse_labels("a=1,b=x=y") == {"a": "1", "b": "x=y"}
