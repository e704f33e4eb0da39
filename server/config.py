"""Server settings from `MORPHML_*` environment variables (pydantic-settings)."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from morphml.space.limits import SpaceLimits
from server.spec import SpecLimits

_SPACE = SpaceLimits()  # the library's defaults
# Shorter tokens can be guessed; `morphml-server token` prints 43 characters.
MIN_TOKEN_LENGTH = 16
PLACEHOLDER_TOKENS = frozenset({"changethis", "changeme", "secret", "token"})


def _token_set(raw: str) -> frozenset[str]:
    return frozenset(token.strip() for token in raw.split(",") if token.strip())


class Settings(BaseSettings):
    """Everything the server reads from its environment; tests build one directly."""

    model_config = SettingsConfigDict(env_prefix="MORPHML_", extra="ignore")

    database_url: str = "sqlite:///morphml.db"
    host: str = "127.0.0.1"
    port: int = 8000
    # Comma-separated lists, so a token can be rotated by listing old and new for a while.
    admin_token: str = ""
    worker_token: str = ""
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    reaper_interval_seconds: float = Field(default=5.0, gt=0)
    worker_offline_seconds: float = Field(default=120.0, gt=0)
    # Waiters are woken on every new or released task; this re-poll only bounds a lost wakeup.
    claim_repoll_seconds: float = Field(default=30.0, gt=0)
    # On SIGTERM: /readyz answers 503 and open long-polls 204 at once, but the server keeps
    # serving this long before it closes its port, so a load balancer's health check sees it
    # leave first (0: close at once; Kubernetes' preStop sleep does this job there).
    shutdown_drain_seconds: float = Field(default=0.0, ge=0, le=120)
    metrics_public: bool = True
    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0)
    run_migrations_on_start: bool = True
    # Threads that run the request handlers' units of work; 0 picks 1 on SQLite (its one
    # writer: more threads only queue on its lock) and 8 on Postgres. Refills (the optimizer's
    # work) run on threads of their own: `refill_threads`.
    db_threads: int = Field(default=0, ge=0, le=256)
    refill_threads: int = Field(default=2, ge=1, le=64)
    # What one experiment may ask of the server (a 422 names the limit): tasks kept in flight,
    # and what its search space may cost (morphml.space.limits).
    max_parallelism: int = Field(default=1_000, ge=1, le=100_000)
    max_space_nodes: int = Field(default=_SPACE.max_nodes, ge=10)
    max_space_variables: int = Field(default=_SPACE.max_variables, ge=1)
    max_repeat_depth: int = Field(default=_SPACE.max_repeat_depth, ge=1)
    max_cell_nodes: int = Field(default=_SPACE.max_cell_nodes, ge=2)
    max_cells_per_stage: int = Field(default=_SPACE.max_cells_per_stage, ge=1)
    # The artifact store (server/artifacts): `file:///abs/dir` or `s3://bucket/prefix`; empty:
    # a directory beside an SQLite database (`morphml.db` -> `morphml.db.artifacts/`), else
    # `./morphml-artifacts`. S3 credentials come from boto3's usual chain (AWS_* variables,
    # ~/.aws, an instance role) unless given here; workers never see them.
    artifacts_url: str = ""
    artifacts_s3_endpoint_url: str = ""
    artifacts_s3_region: str = ""
    artifacts_s3_access_key_id: str = ""
    artifacts_s3_secret_access_key: str = Field(default="", repr=False)
    # One artifact, and all of an experiment's stored artifacts together (413 past either).
    artifact_max_bytes: int = Field(default=2 * 1024**3, ge=1)
    experiment_artifacts_max_bytes: int = Field(default=50 * 1024**3, ge=1)

    @field_validator("admin_token", "worker_token")
    @classmethod
    def _strong_tokens(cls, value: str) -> str:
        """Refuse placeholders and short tokens; never echo the value (it may hold a real
        token beside the bad one)."""
        tokens = _token_set(value)
        if tokens & PLACEHOLDER_TOKENS:
            raise ValueError(
                "refusing a placeholder token; generate one with `morphml-server token`"
            )
        if any(len(token) < MIN_TOKEN_LENGTH for token in tokens):
            raise ValueError(
                f"every token must be at least {MIN_TOKEN_LENGTH} characters; "
                "generate one with `morphml-server token`"
            )
        return value

    @property
    def admin_tokens(self) -> frozenset[str]:
        return _token_set(self.admin_token)

    @property
    def worker_tokens(self) -> frozenset[str]:
        return _token_set(self.worker_token)

    @property
    def database_threads(self) -> int:
        if self.db_threads:
            return self.db_threads
        return 1 if self.database_url.startswith("sqlite") else 8

    @property
    def spec_limits(self) -> SpecLimits:
        space = SpaceLimits(
            max_nodes=self.max_space_nodes,
            max_variables=self.max_space_variables,
            max_repeat_depth=self.max_repeat_depth,
            max_cell_nodes=self.max_cell_nodes,
            max_cells_per_stage=self.max_cells_per_stage,
        )
        return SpecLimits(space=space, max_parallelism=self.max_parallelism)

    @property
    def artifacts_location(self) -> str:
        """`artifacts_url`, or its default beside the database."""
        if self.artifacts_url:
            return self.artifacts_url
        prefix = "sqlite:///"
        database = self.database_url
        if database.startswith(prefix) and ":memory:" not in database:
            path = Path(database.removeprefix(prefix)).resolve()
            return f"file://{path.parent / (path.name + '.artifacts')}"
        return f"file://{Path('morphml-artifacts').resolve()}"

    @property
    def auth_enabled(self) -> bool:
        return bool(self.admin_tokens or self.worker_tokens)


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses: the only binds allowed without tokens."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@lru_cache
def get_settings() -> Settings:
    return Settings()
