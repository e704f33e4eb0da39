"""The REST contract: every request and response body of the API, as pydantic models.

The one place the wire format is written down. The server declares its endpoints with these
models (`server.schemas` re-exports them), the admin client (`morphml.client`) and the worker
agent validate every answer with them, and build every request from them, so a field renamed
here is renamed for all three. Class names are part of the contract too: they are the names of
`components/schemas` in `openapi.json`.

Answers are parsed leniently about additions (unknown fields are ignored, so an older client
still reads a newer server) and strictly about types: an id is an integer, never a string that
could end up in a path.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from morphml.json_safety import bounded_metric, json_safe, no_lone_surrogates, visible_ascii

# Postgres text cannot hold NUL, so it is refused here rather than failing at the database; a
# lone UTF-16 surrogate (a JSON "\ud800") cannot be encoded at all, so it is refused too: once
# stored, it would make every listing that shows it fail.
_Checked = AfterValidator(no_lone_surrogates)
Text = Annotated[str, StringConstraints(max_length=200, pattern=r"^[^\x00]*$"), _Checked]
LongText = Annotated[str, StringConstraints(max_length=20_000, pattern=r"^[^\x00]*$"), _Checked]
Name = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00]*$"), _Checked
]
Finite = Annotated[float, Field(allow_inf_nan=False)]
# A reported value: finite and of a magnitude no real metric has (a forged 1e308 is refused).
MetricValue = Annotated[float, Field(allow_inf_nan=False), AfterValidator(bounded_metric)]
# At most 64 metrics a report, so a heartbeat cannot carry thousands.
Metrics = Annotated[dict[Text, MetricValue], Field(max_length=64)]
Labels = dict[Text, Text]
# Free-form JSON (a search space, optimizer and evaluator params): no NaN or Infinity, no lone
# surrogates, at most 32 levels deep; checked before anything is stored.
JsonObject = Annotated[dict[str, Any], AfterValidator(json_safe)]
# Lease tokens are URL-safe base64 from the server; anything else is refused before comparing.
LeaseToken = Annotated[
    str, StringConstraints(max_length=200, pattern=r"^[^\x00]*$"), AfterValidator(visible_ascii)
]
SmallInt = Annotated[int, Field(ge=0, le=1_000_000_000)]

# Task states after which nothing changes any more.
FINAL_STATES = ("completed", "failed", "pruned", "cancelled")


class Strict(BaseModel):
    """Unknown fields are a 422, so a typo in a spec never goes unnoticed."""

    model_config = ConfigDict(extra="forbid")


class OptimizerSpec(Strict):
    name: Name = "default"
    params: JsonObject = Field(default_factory=dict)


class ObjectiveSpec(Strict):
    metric: Name
    direction: Literal["maximize", "minimize"] = "maximize"


class EvaluatorSpec(Strict):
    kind: Name
    params: JsonObject = Field(default_factory=dict)


class BudgetSpec(Strict):
    max_evaluations: Annotated[int, Field(ge=1, le=10_000_000)] | None = None
    max_seconds: Annotated[float, Field(gt=0, le=10 * 365 * 86400)] | None = None


class ResourceNeeds(Strict):
    gpus: Annotated[int, Field(ge=0, le=1024)] = 0
    gpu_memory_mb: SmallInt = 0
    labels: Labels = Field(default_factory=dict)


class PrunerSpec(Strict):
    name: Name
    params: JsonObject = Field(default_factory=dict)


def _default_objectives() -> list[ObjectiveSpec]:
    return [ObjectiveSpec(metric="val_accuracy")]


class ExperimentCreate(Strict):
    """The experiment spec (DESIGN.md "The experiment spec, by example"), plus pruner and seed."""

    name: Name
    search_space: JsonObject
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    objectives: list[ObjectiveSpec] = Field(
        default_factory=_default_objectives, min_length=1, max_length=16
    )
    evaluator: EvaluatorSpec
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    parallelism: Annotated[int, Field(ge=1, le=100_000)] = 4
    lease_seconds: Annotated[float, Field(ge=1, le=86_400)] = 60
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 3
    priority: Annotated[int, Field(ge=-1_000_000, le=1_000_000)] = 0
    resources: ResourceNeeds = Field(default_factory=ResourceNeeds)
    pruner: PrunerSpec | None = None
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] | None = None


class BestPublic(BaseModel):
    task_id: int
    metrics: dict[str, float]
    value: float
    candidate: dict[str, Any]


class ExperimentPublic(BaseModel):
    id: int
    name: str
    status: str
    priority: int
    parallelism: int
    lease_seconds: float
    max_attempts: int
    budget: BudgetSpec
    spec: dict[str, Any]
    tasks_created: int
    counts: dict[str, int]
    best: BestPublic | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def max_evaluations(self) -> int | None:
        return self.budget.max_evaluations

    @property
    def done(self) -> int:
        """Tasks that reached a final state."""
        return sum(self.counts.get(s, 0) for s in FINAL_STATES)


class ExperimentsPublic(BaseModel):
    data: list[ExperimentPublic]
    count: int


class TaskPublic(BaseModel):
    id: int
    experiment_id: int
    state: str
    candidate: dict[str, Any]
    candidate_key: str
    budget: float | None
    attempt: int
    max_attempts: int
    worker_id: int | None
    progress: float | None
    step: int | None
    metrics: dict[str, float] | None
    intermediate: dict[str, Any]
    error: str | None
    lease_expires_at: datetime | None
    created_at: datetime
    claimed_at: datetime | None
    finished_at: datetime | None


class TasksPublic(BaseModel):
    data: list[TaskPublic]
    count: int


class ParetoPublic(BaseModel):
    objectives: list[ObjectiveSpec]
    data: list[TaskPublic]


class GpuInfo(BaseModel):
    index: Annotated[int, Field(ge=0, le=1024)]
    name: Text = ""
    memory_mb: SmallInt = 0


class WorkerResources(BaseModel):
    cpus: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    memory_mb: SmallInt = 0
    gpus: list[GpuInfo] = Field(default_factory=list, max_length=1024)


class WorkerCreate(BaseModel):
    name: Name
    host: Text = ""
    resources: WorkerResources = Field(default_factory=WorkerResources)
    labels: Labels = Field(default_factory=dict)


class WorkerPublic(BaseModel):
    id: int
    name: str
    host: str
    resources: dict[str, Any]
    labels: dict[str, str]
    status: str
    created_at: datetime
    last_seen_at: datetime
    current_tasks: list[int]


class WorkersPublic(BaseModel):
    data: list[WorkerPublic]
    count: int


class FreeResources(BaseModel):
    gpus: Annotated[int, Field(ge=0, le=1024)] = 0
    gpu_memory_mb: SmallInt = 0


class ClaimRequest(BaseModel):
    worker_id: Annotated[int, Field(ge=1, le=2**31 - 1)]
    wait_seconds: Annotated[float, Field(ge=0, le=60)] = 30
    free: FreeResources | None = None
    labels: Labels | None = None


class EvaluatorPublic(BaseModel):
    kind: str
    params: dict[str, Any]


class ClaimedTask(BaseModel):
    """What a worker gets from a claim: everything it needs to run the task and keep the lease."""

    id: int
    experiment_id: int
    candidate: dict[str, Any]
    evaluator: EvaluatorPublic
    objectives: list[ObjectiveSpec]
    budget: float | None
    attempt: int
    lease_token: str
    lease_expires_at: datetime
    lease_seconds: float


class HeartbeatRequest(BaseModel):
    lease_token: LeaseToken
    progress: Finite | None = None
    step: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    metrics: Metrics | None = None


class HeartbeatAnswer(BaseModel):
    action: Literal["continue", "stop"]
    reason: str | None
    lease_expires_at: datetime | None


class CompleteRequest(BaseModel):
    lease_token: LeaseToken
    metrics: Metrics


class FailRequest(BaseModel):
    lease_token: LeaseToken
    error: LongText = ""
    retryable: bool = True


def first_problem(exc: ValidationError) -> str:
    """The first thing that does not fit, in one line: `field.path: message`."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "body"
    return f"{where}: {error['msg']}"
