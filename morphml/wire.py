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
    BeforeValidator,
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

# The header that carries a worker's own credential (from registration) on its task calls.
WORKER_CREDENTIAL_HEADER = "X-MorphML-Worker-Credential"

# Task states after which nothing changes any more.
FINAL_STATES = ("completed", "failed", "pruned", "cancelled")


class Strict(BaseModel):
    """Unknown fields are a 422, so a typo in a spec never goes unnoticed."""

    model_config = ConfigDict(extra="forbid")


class OptimizerSpec(Strict):
    """The search strategy, by registry name (`default` = `surrogate`, `random`,
    `regularized_evolution`, `genetic`, `local_search`, `simulated_annealing`, `tpe`,
    `differential_evolution`, `nsga2`, `asha`, `hyperband`, `bohb`, `weight_sharing`), with its
    parameters (e.g. `population_size`, `sample_size`)."""

    name: Name = "default"
    params: JsonObject = Field(default_factory=dict)


class ObjectiveSpec(Strict):
    """A metric the workers report, and whether more or less of it is better. The first
    objective ranks tasks (`best`); all of them make the Pareto front."""

    metric: Name
    direction: Literal["maximize", "minimize"] = "maximize"


class EvaluatorSpec(Strict):
    """How a worker evaluates a candidate: `train`, `tabular` (NAS-Bench-201 lookup), `proxy`
    (zero-cost scores) or `python` (a function the worker allows), with its parameters (e.g.
    `dataset`, `epochs`)."""

    kind: Name
    params: JsonObject = Field(default_factory=dict)


class BudgetSpec(Strict):
    """When the search stops: after `max_evaluations` tasks and/or `max_seconds` of wall
    time (whichever comes first; null = no limit of that kind). It fails, with the first
    task's error, once `max_failed` tasks have failed (null: once its first 5 finished tasks
    all failed, or when it ends with failures and no success)."""

    max_evaluations: Annotated[int, Field(ge=1, le=10_000_000)] | None = None
    max_seconds: Annotated[float, Field(gt=0, le=10 * 365 * 86400)] | None = None
    max_failed: Annotated[int, Field(ge=1, le=10_000_000)] | None = None


class ResourceNeeds(Strict):
    """What a worker must offer to run this experiment's tasks: GPUs, GPU memory per task,
    and labels it must carry (all of them, with these values)."""

    gpus: Annotated[int, Field(ge=0, le=1024)] = 0
    gpu_memory_mb: SmallInt = 0
    labels: Labels = Field(default_factory=dict)


class PrunerSpec(Strict):
    """Stops running candidates early from their intermediate metrics (`median` or `asha`);
    the worker learns it from its heartbeat's `stop`."""

    name: Name
    params: JsonObject = Field(default_factory=dict)


# --- The search-space JSON, documented -------------------------------------------------------
# `search_space` is validated as free-form JSON (`JsonObject`); the server then builds it with
# `morphml.space.space_from_dict`, whose refusals are 422s naming the field. The models below
# are never used to validate: they only give `search_space` a JSON schema in the OpenAPI
# document (through `json_schema_input_type`), describing what that function accepts.


class ChoiceDomain(BaseModel):
    """The search chooses one of the options. A plain list means the same (except for
    `input.shape`, which is never searched)."""

    choice: list[Any] = Field(
        min_length=1, description="The options, each a value the parameter takes."
    )


class IntRangeDomain(BaseModel):
    """An integer in [low, high], both included; `log` samples uniformly in log space."""

    bounds: tuple[int, int] = Field(alias="int", description="[low, high]")
    log: bool = Field(default=False, description="Sample in log space (needs low > 0).")


class FloatRangeDomain(BaseModel):
    """A number in [low, high]; `log` samples uniformly in log space."""

    bounds: tuple[float, float] = Field(alias="float", description="[low, high]")
    log: bool = Field(default=False, description="Sample in log space (needs low > 0).")


Activation = Literal["relu", "gelu", "silu", "tanh", "sigmoid", "identity"]
CellOp = Literal[
    "none",
    "skip_connect",
    "nor_conv_1x1",
    "nor_conv_3x3",
    "avg_pool_3x3",
    "max_pool_3x3",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
]
IntParam = int | list[int] | ChoiceDomain | IntRangeDomain
FloatParam = float | list[float] | ChoiceDomain | FloatRangeDomain
BoolParam = bool | list[bool] | ChoiceDomain
ActivationParam = Activation | list[Activation] | ChoiceDomain


class _Layer(BaseModel):
    """A layer of a sequential space; each parameter is a constant or a domain to search."""

    model_config = ConfigDict(extra="forbid")  # an unknown parameter is refused

    optional: bool = Field(default=False, description="The search may leave this layer out.")


class InputLayer(_Layer):
    """The input: the first layer, with the shape of one example."""

    type: Literal["input"]
    shape: list[int] = Field(
        min_length=1, max_length=3, description="[C, H, W] or [F]: positive ints, never searched."
    )


class Conv2dLayer(_Layer):
    """A 2-D convolution with "same" padding."""

    type: Literal["conv2d"]
    filters: IntParam = Field(description="Output channels (a positive int).")
    kernel_size: IntParam = Field(default=3, description="A positive int.")
    stride: IntParam = Field(default=1, description="A positive int.")
    bias: BoolParam = True
    groups: IntParam = Field(
        default=1, description="Grouped conv: divides the input and output channels."
    )
    dilation: IntParam = Field(default=1, description="A positive int (1: not dilated).")


class BatchnormLayer(_Layer):
    """Batch normalization."""

    type: Literal["batchnorm"]


class ActivationLayer(_Layer):
    """An activation function."""

    type: Literal["activation"]
    fn: ActivationParam = "relu"


class PoolLayer(_Layer):
    """Max or average pooling."""

    type: Literal["maxpool", "avgpool"]
    pool_size: IntParam = Field(default=2, description="A positive int.")
    stride: IntParam | None = Field(
        default=None, description="A positive int; null means pool_size."
    )
    padding: IntParam = Field(default=0, description="An int >= 0.")


class GlobalPoolLayer(_Layer):
    """Global max or average pooling over the spatial dimensions."""

    type: Literal["global_avgpool", "global_maxpool"]


class FlattenLayer(_Layer):
    """Flattens [C, H, W] to [C * H * W]."""

    type: Literal["flatten"]


class DropoutLayer(_Layer):
    """Dropout."""

    type: Literal["dropout"]
    rate: FloatParam = Field(default=0.5, description="A number in [0, 1).")


class DenseLayer(_Layer):
    """A fully connected layer; `output` is the last one (its units are the classes)."""

    type: Literal["dense", "output"]
    units: IntParam = Field(description="A positive int.")


class RepeatBlock(BaseModel):
    """A block repeated `depth` times; each repetition chooses its own values."""

    type: Literal["repeat"]
    depth: IntParam = Field(description="An int >= 0, or a domain of them.")
    layers: list[SpaceElement] = Field(min_length=1)


class ResidualBlock(BaseModel):
    """`x + block(x)`: the block must keep the shape of its input."""

    type: Literal["residual"]
    layers: list[SpaceElement] = Field(min_length=1)


SpaceElement = Annotated[
    InputLayer
    | Conv2dLayer
    | BatchnormLayer
    | ActivationLayer
    | PoolLayer
    | GlobalPoolLayer
    | FlattenLayer
    | DropoutLayer
    | DenseLayer
    | RepeatBlock
    | ResidualBlock,
    Field(discriminator="type"),
]


class SequentialSpaceSpec(BaseModel):
    """A sequential space: layers from `input` to `output`, any of them searched
    (`morphml.SearchSpace(...).to_dict()`)."""

    type: Literal["sequential"] = Field(default="sequential", description="May be left out.")
    name: str = Field(min_length=1, description="The space's name (kept with each candidate).")
    layers: list[SpaceElement]


class CellSpaceSpec(BaseModel):
    """A cell space: a `num_nodes`-node cell stacked 3 x `cells_per_stage` in NAS-Bench-201's
    macro network (`morphml.CellSpace(...).to_dict()`; the defaults are NAS-Bench-201 itself:
    every edge of the cell chooses one of `ops`). `inputs_per_node` makes each computed node pick
    that many inputs instead (DARTS: 2, with `cell_inputs` 2 and `cell_output` "concat")."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["cell"]
    name: str = "nas-bench-201"
    num_nodes: int = Field(default=4, ge=2, description="Nodes of the cell, its inputs included.")
    ops: list[CellOp | str] = Field(
        default=["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"],
        min_length=1,
        description="Built-in ops, or names declared in `custom_ops`.",
    )
    input_shape: list[int] = Field(
        default=[3, 32, 32], min_length=3, max_length=3, description="[C, H, W]"
    )
    stem_channels: int = Field(default=16, ge=1)
    cells_per_stage: int = Field(default=5, ge=1)
    num_classes: int = Field(default=10, ge=1)
    inputs_per_node: int | None = Field(
        default=None,
        ge=1,
        description="null: every earlier node feeds every computed node (NAS-Bench-201); k: "
        "each computed node picks k distinct earlier nodes, each with its own op.",
    )
    cell_inputs: int = Field(
        default=1, ge=1, description="The outputs of this many previous cells (DARTS: 2)."
    )
    node_aggregation: Literal["sum", "concat"] = Field(
        default="sum", description="How a node combines its inputs."
    )
    cell_output: Literal["last", "sum", "concat"] = Field(
        default="last", description="The last node, or all computed nodes summed/concatenated."
    )
    custom_ops: list[str] = Field(
        default=[],
        description="Names of your own shape-preserving ops (built by a python evaluator).",
    )


def _as_is(value: Any) -> Any:
    return value


SMALL_SEQUENTIAL_SPACE: dict[str, Any] = {
    "type": "sequential",
    "name": "small-cnn",
    "layers": [
        {"type": "input", "shape": [1, 28, 28]},
        {"type": "conv2d", "filters": [16, 32], "kernel_size": {"choice": [3, 5]}},
        {"type": "activation", "fn": {"choice": ["relu", "gelu"]}},
        {"type": "maxpool", "pool_size": 2},
        {"type": "flatten"},
        {"type": "dense", "units": {"int": [32, 256], "log": True}},
        {"type": "output", "units": 10},
    ],
}
NB201_CELL_SPACE: dict[str, Any] = {
    "type": "cell",
    "name": "nas-bench-201",
    "num_nodes": 4,
    "ops": ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"],
    "input_shape": [3, 32, 32],
    "stem_channels": 16,
    "cells_per_stage": 5,
    "num_classes": 10,
}

# The field's type: what it validates is `JsonObject`; what it documents, the two space kinds.
SearchSpaceJson = Annotated[
    JsonObject,
    BeforeValidator(_as_is, json_schema_input_type=SequentialSpaceSpec | CellSpaceSpec),
    Field(
        description=(
            'The search space: a sequential space (`type` "sequential" or left out) or a cell '
            'space (`type` "cell"). Refused with a 422 naming the field when it cannot be '
            "built, or when no architecture of it has shapes that flow."
        ),
        examples=[SMALL_SEQUENTIAL_SPACE, NB201_CELL_SPACE],
        # Still a JSON object of any keys, as before the schema was documented.
        json_schema_extra={"type": "object", "additionalProperties": True},
    ),
]


class ArtifactPolicy(Strict):
    """Which completed tasks' final `weights` the server keeps, ranked by the first objective
    (with several objectives too: a Pareto front would load every completed task's metrics on
    each completion; keep `all` to hold the whole front): `all`, the `top_k`, the `best` only,
    or `none`; the others are deleted when they drop out, except weights a pending or running
    promotion starts from. Checkpoints are deleted when their task finishes."""

    keep: Literal["all", "top_k", "best", "none"] = "top_k"
    k: Annotated[int, Field(ge=1, le=1000)] = 5


def _default_objectives() -> list[ObjectiveSpec]:
    return [ObjectiveSpec(metric="val_accuracy")]


class ExperimentCreate(Strict):
    """The experiment spec: what to search, how, where and for how long (README, "The
    experiment spec"). Unknown fields are refused."""

    name: Name = Field(description="A label for people; need not be unique.")
    search_space: SearchSpaceJson
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    objectives: list[ObjectiveSpec] = Field(
        default_factory=_default_objectives, min_length=1, max_length=16
    )
    evaluator: EvaluatorSpec
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    parallelism: Annotated[
        int, Field(ge=1, le=100_000, description="Tasks kept queued or running at once.")
    ] = 4
    lease_seconds: Annotated[
        float,
        Field(ge=1, le=86_400, description="How long a claim holds a task without a heartbeat."),
    ] = 60
    max_attempts: Annotated[
        int, Field(ge=1, le=100, description="Runs of a task (retries + 1) before it fails.")
    ] = 3
    priority: Annotated[
        int,
        Field(
            ge=-1_000_000,
            le=1_000_000,
            description="Higher goes first when workers claim; equal ones share workers fairly.",
        ),
    ] = 0
    resources: ResourceNeeds = Field(default_factory=ResourceNeeds)
    pruner: PrunerSpec | None = None
    artifacts: ArtifactPolicy = Field(
        default_factory=ArtifactPolicy,
        description="Which completed tasks' trained weights the server keeps (default: the 5 "
        "best); checkpoints always go when their task finishes.",
    )
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] | None = Field(
        default=None, description="Makes the optimizer's proposals reproducible; null: random."
    )


class BestPublic(BaseModel):
    """The best completed task so far, by the first objective."""

    task_id: int
    metrics: dict[str, float]
    value: float
    candidate: dict[str, Any]


class ExperimentPublic(BaseModel):
    """An experiment as the server keeps it: its spec, status and progress."""

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
    """A page of experiments; `count` is the total."""

    data: list[ExperimentPublic]
    count: int


class TaskPublic(BaseModel):
    """One evaluation of one candidate architecture (at an optional budget, e.g. epochs)."""

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
    """A page of tasks; `count` is the total."""

    data: list[TaskPublic]
    count: int


class ParetoPublic(BaseModel):
    """The completed tasks no other completed task beats on every objective."""

    objectives: list[ObjectiveSpec]
    data: list[TaskPublic]


class GpuInfo(BaseModel):
    """One GPU of a worker's machine."""

    index: Annotated[int, Field(ge=0, le=1024)]
    name: Text = ""
    memory_mb: SmallInt = 0


class WorkerResources(BaseModel):
    """What a worker's machine has."""

    cpus: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    memory_mb: SmallInt = 0
    gpus: list[GpuInfo] = Field(default_factory=list, max_length=1024)
    slots: Annotated[int, Field(ge=0, le=4096)] = Field(
        default=0,
        description="Evaluations it runs at once; the server leases it no more (0: undeclared).",
    )


class WorkerCreate(BaseModel):
    """A worker agent announcing itself: who it is and what it can run."""

    name: Name
    host: Text = ""
    resources: WorkerResources = Field(default_factory=WorkerResources)
    labels: Labels = Field(default_factory=dict)


class WorkerPublic(BaseModel):
    """A registered worker, with the tasks it is running."""

    id: int
    name: str
    host: str
    resources: dict[str, Any]
    labels: dict[str, str]
    status: str
    created_at: datetime
    last_seen_at: datetime
    current_tasks: list[int]
    credential: str | None = Field(
        default=None,
        description="Only in the answer to registration: this worker's own credential. Send it "
        f"as the `{WORKER_CREDENTIAL_HEADER}` header on every claim, heartbeat, complete and "
        "fail; with tokens configured, the server binds those calls to this worker.",
    )


class WorkersPublic(BaseModel):
    """A page of workers; `count` is the total."""

    data: list[WorkerPublic]
    count: int


class FreeResources(BaseModel):
    """What the worker has free right now, for this claim."""

    gpus: Annotated[int, Field(ge=0, le=1024)] = 0
    gpu_memory_mb: SmallInt = 0


class ClaimRequest(BaseModel):
    """A worker asking for a task it can run."""

    worker_id: Annotated[int, Field(ge=1, le=2**31 - 1, description="From the registration.")]
    wait_seconds: Annotated[
        float, Field(ge=0, le=60, description="How long to wait for a task; 0 answers at once.")
    ] = 30
    free: FreeResources | None = Field(
        default=None,
        description="Free GPUs and GPU memory now; null: everything the worker registered.",
    )
    labels: Labels | None = Field(
        default=None, description="The worker's labels for this claim; null: the registered ones."
    )


MAX_TASKS_PER_CLAIM = 64


class BatchClaimRequest(ClaimRequest):
    """A worker asking for up to `max_tasks` tasks at once (one per free slot); each must fit
    `free`, so a worker whose free slots differ sends the least of them."""

    max_tasks: Annotated[
        int,
        Field(
            ge=1,
            le=MAX_TASKS_PER_CLAIM,
            description="At most this many tasks; the answer may hold fewer (at least one).",
        ),
    ] = 1


class NextClaim(BaseModel):
    """Claim-on-complete: what the slot that just finished offers for its next task. It is
    answered at once (no waiting): an empty `next` means "long-poll `/claim` as usual"."""

    worker_id: Annotated[int, Field(ge=1, le=2**31 - 1, description="From the registration.")]
    free: FreeResources | None = Field(
        default=None,
        description="Free GPUs and GPU memory now; null: everything the worker registered.",
    )
    labels: Labels | None = Field(
        default=None, description="The worker's labels for this claim; null: the registered ones."
    )
    max_tasks: Annotated[int, Field(ge=1, le=MAX_TASKS_PER_CLAIM)] = 1


class EvaluatorPublic(BaseModel):
    """The experiment's evaluator, as in its spec."""

    kind: str
    params: dict[str, Any]


ArtifactKind = Literal["weights", "checkpoint", "file"]
# An artifact's name: one flat segment of letters, digits, `.`, `_` and `-`, starting with a
# letter or digit (`../x`, absolute paths, separators and NUL bytes are a 422).
ARTIFACT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
# Headers of the artifact endpoints (issue 15): `PUT /v1/tasks/{id}/artifacts/{name}` streams the
# raw bytes with the task's lease token (current, or the one that completed it; 409 when stale),
# the kind, the sha256 the server checks while streaming (422 on mismatch, nothing visible) and,
# for checkpoints, the epoch. `GET` of the same path streams them back (admin, or the worker
# holding the task's current lease: how a resumed attempt fetches its checkpoint).
LEASE_TOKEN_HEADER = "X-MorphML-Lease-Token"
ARTIFACT_KIND_HEADER = "X-MorphML-Artifact-Kind"
SHA256_HEADER = "X-MorphML-Sha256"
EPOCH_HEADER = "X-MorphML-Epoch"


class ArtifactPublic(BaseModel):
    """A file a task produced, kept by the server's artifact store: final `weights`, the latest
    `checkpoint` of a running task, or a `file` a `python` evaluator saved. `missing`: the
    store could not keep it (`reason` says why)."""

    task_id: int
    name: str
    kind: ArtifactKind
    size: int
    sha256: str
    status: Literal["stored", "missing"]
    reason: str | None = None
    epoch: int | None = None
    created_at: datetime


class ArtifactsPublic(BaseModel):
    """Artifacts; `count` is the total."""

    data: list[ArtifactPublic]
    count: int


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
    checkpoint: ArtifactPublic | None = Field(
        default=None,
        description="The task's latest checkpoint from an earlier attempt: resume from it.",
    )
    warm_start: ArtifactPublic | None = Field(
        default=None,
        description="A promotion (ASHA, Hyperband): the lower rung task's final weights.",
    )


class ClaimedTasks(BaseModel):
    """Tasks claimed in one request, each under its own lease."""

    data: list[ClaimedTask]


class HeartbeatRequest(BaseModel):
    """Keeps the lease; optionally reports progress and intermediate metrics."""

    lease_token: LeaseToken = Field(description="The claim's `lease_token`.")
    progress: Finite | None = Field(default=None, description="Done so far, e.g. 0.5 (free-form).")
    step: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = Field(
        default=None,
        description="The step these metrics belong to, e.g. the epoch; pruners compare it.",
    )
    metrics: Metrics | None = Field(default=None, description="Intermediate metrics at this step.")


class HeartbeatAnswer(BaseModel):
    """`continue` (the lease now runs to `lease_expires_at`) or `stop`: the task was pruned
    or cancelled and is settled on the server; drop it without reporting."""

    action: Literal["continue", "stop"]
    reason: str | None
    lease_expires_at: datetime | None


class CompleteRequest(BaseModel):
    """The task's final metrics (they should include the objectives' metrics)."""

    lease_token: LeaseToken = Field(description="The claim's `lease_token`.")
    metrics: Metrics


class CompleteAndClaimRequest(CompleteRequest):
    """The task's final metrics, and the claim of the slot's next task in the same request."""

    claim: NextClaim


class FailRequest(BaseModel):
    """The task could not run."""

    lease_token: LeaseToken = Field(description="The claim's `lease_token`.")
    error: LongText = Field(default="", description="What went wrong (kept with the task).")
    retryable: bool = Field(
        default=True,
        description="Run it again (attempt + 1) while attempts remain; false: fail it now.",
    )
    environment: bool = Field(
        default=False,
        description="The worker's machine failed (disk full or read-only, no process start), "
        "not the candidate: run it again without using an attempt (at most 5 times), and not "
        "straight back on this worker.",
    )


class CompleteAndClaimAnswer(BaseModel):
    """The completed task, as `/complete` answers it, and the tasks claimed for the slot
    (empty when nothing fitting was pending)."""

    task: TaskPublic
    next: list[ClaimedTask]


def first_problem(exc: ValidationError) -> str:
    """The first thing that does not fit, in one line: `field.path: message`."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "body"
    return f"{where}: {error['msg']}"
