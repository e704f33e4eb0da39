"""Worker settings: command-line flags over `MORPHML_WORKER_*` environment variables."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from worker.runner import DEFAULT_MAX_TASKS


def default_work_dir() -> Path:
    """Somewhere that survives a restart: the outbox of unacknowledged results lives there."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "morphml-worker"


class WorkerSettings(BaseSettings):
    """Everything `morphml-worker` can be told; see `morphml-worker --help`."""

    model_config = SettingsConfigDict(env_prefix="MORPHML_WORKER_", extra="forbid")

    # One URL, or several comma-separated (server replicas): the worker fails over between them.
    server: str = Field(
        description="base URL of the control plane, e.g. http://10.0.0.5:8000, or several "
        "comma-separated replicas to fail over between"
    )
    token: str = Field("", description="bearer token with the worker role")
    name: str = Field(default_factory=socket.gethostname)
    gpus: str = Field("auto", description='"auto", "none" or indices such as "0,1"')
    slots: int | None = Field(
        None, ge=1, description="slots per GPU, or CPU slots without GPUs (default 1)"
    )
    labels: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    allow: Annotated[list[str], NoDecode] = Field(default_factory=list)
    work_dir: Path = Field(default_factory=default_work_dir)
    grace_seconds: float = Field(20.0, ge=0)
    poll_seconds: int = Field(20, ge=0, le=60, description="long-poll wait of each claim")
    task_timeout_seconds: float | None = Field(None, gt=0)
    max_tasks_per_process: int = Field(
        DEFAULT_MAX_TASKS,
        ge=1,
        description="tasks a slot's evaluation process runs before a fresh one replaces it",
    )
    max_process_memory_mb: int | None = Field(
        None, ge=1, description="replace an evaluation process above this (default: slot's share)"
    )
    log_level: str = "INFO"

    @field_validator("labels", mode="before")
    @classmethod
    def _parse_labels(cls, value: Any) -> Any:
        return parse_labels(value) if isinstance(value, str) else value

    @field_validator("allow", mode="before")
    @classmethod
    def _parse_allow(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("server")
    @classmethod
    def _check_server(cls, value: str) -> str:
        return ",".join(parse_servers(value))

    @property
    def servers(self) -> list[str]:
        """The server URLs, in the order given: the first is tried first."""
        return self.server.split(",")


def parse_servers(text: str) -> list[str]:
    """`"http://a:8000/, http://b:8000"` -> `["http://a:8000", "http://b:8000"]`."""
    servers = [part.strip().rstrip("/") for part in text.split(",") if part.strip()]
    if not servers:
        raise ValueError("expected an http:// or https:// URL, got none")
    for url in servers:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
    if len(set(servers)) < len(servers):
        raise ValueError(f"a server URL is listed twice in {text!r}")
    return servers


def parse_labels(text: str) -> dict[str, str]:
    """`"zone=a,gpu=h100"` -> `{"zone": "a", "gpu": "h100"}`."""
    labels = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"labels: expected key=value, got {part.strip()!r}")
        labels[key.strip()] = value.strip()
    return labels
