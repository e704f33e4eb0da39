"""`Client(url, token)`: a typed httpx client for the MorphML REST API (admin side).

Every method maps to one endpoint; list methods follow the pages for you. Answers are parsed
into the wire models of `morphml.wire`. Errors raise `APIError` carrying the HTTP status and the
server's reason (its `detail`); an answer that does not match the contract raises one too.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from morphml.errors import MorphMLError
from morphml.space.base import Space
from morphml.wire import (
    ARTIFACT_NAME_PATTERN,
    SHA256_HEADER,
    ArtifactPublic,
    ArtifactsPublic,
    BestPublic,
    ExperimentCreate,
    ExperimentPublic,
    ExperimentsPublic,
    ParetoPublic,
    TaskPublic,
    TasksPublic,
    WorkerPublic,
    WorkersPublic,
    first_problem,
)

PAGE_SIZE = 200
CHUNK_BYTES = 1024 * 1024


class APIError(MorphMLError):
    """The server refused a request or could not be reached; `str()` says why."""

    def __init__(self, message: str, status_code: int | None = None, detail: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail


# The answers are the wire models themselves; these names are what callers of the client use.
Best = BestPublic
Experiment = ExperimentPublic
Task = TaskPublic
Worker = WorkerPublic
Pareto = ParetoPublic
Artifact = ArtifactPublic
Model = TypeVar("Model", bound=BaseModel)
Page = TypeVar("Page", ExperimentsPublic, TasksPublic, WorkersPublic)


class Client:
    """`Client("http://127.0.0.1:8000", token)`; pass `http` to reuse or mock an httpx.Client."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        http: httpx.Client | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = http or httpx.Client(base_url=url.rstrip("/"), timeout=timeout)
        self.http.headers.update(headers)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise APIError(f"cannot reach the server at {self.http.base_url}: {exc}") from None
        if response.status_code >= 400:
            raise _api_error(response)
        try:
            return response.json() if response.content else None
        except ValueError:
            raise APIError(
                f"{method} {path}: the answer is not JSON", response.status_code
            ) from None

    def _get(self, model: type[Model], method: str, path: str, **kwargs: Any) -> Model:
        """The answer of one call, checked against its wire model."""
        data = self._request(method, path, **kwargs)
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise APIError(
                f"{method} {path}: unexpected answer ({first_problem(exc)}); "
                "is the server a different MorphML version?"
            ) from None

    def _pages(self, page: type[Page], path: str, params: dict[str, Any]) -> Iterator[Page]:
        offset = 0
        while True:
            params = {**params, "offset": offset, "limit": PAGE_SIZE}
            answer = self._get(page, "GET", path, params=params)
            yield answer
            offset += len(answer.data)
            if not answer.data or offset >= answer.count:
                return

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "/healthz")
        return result

    def create_experiment(self, spec: dict[str, Any] | ExperimentCreate) -> Experiment:
        """Submit a spec (README, "The experiment spec"); `search_space` may be a `Space`
        object or its dict.

        A dict goes to the server as it is, so the server's own 422 says what is wrong with it.
        """
        if isinstance(spec, ExperimentCreate):
            body = spec.model_dump(mode="json", exclude_unset=True)
        else:
            body = dict(spec)
        if isinstance(body.get("search_space"), Space):
            body["search_space"] = body["search_space"].to_dict()
        return self._get(Experiment, "POST", "/v1/experiments", json=body)

    def experiments(self, status: str | None = None) -> list[Experiment]:
        params = {"status": status} if status else {}
        pages = self._pages(ExperimentsPublic, "/v1/experiments", params)
        return [experiment for page in pages for experiment in page.data]

    def experiment(self, experiment_id: int) -> Experiment:
        return self._get(Experiment, "GET", f"/v1/experiments/{int(experiment_id)}")

    def pause(self, experiment_id: int) -> Experiment:
        return self._lifecycle(experiment_id, "pause")

    def resume(self, experiment_id: int) -> Experiment:
        return self._lifecycle(experiment_id, "resume")

    def cancel(self, experiment_id: int) -> Experiment:
        return self._lifecycle(experiment_id, "cancel")

    def _lifecycle(self, experiment_id: int, action: str) -> Experiment:
        return self._get(Experiment, "POST", f"/v1/experiments/{int(experiment_id)}/{action}")

    def tasks(self, experiment_id: int, state: str | None = None) -> list[Task]:
        params = {"state": state} if state else {}
        path = f"/v1/experiments/{int(experiment_id)}/tasks"
        return [task for page in self._pages(TasksPublic, path, params) for task in page.data]

    def best(self, experiment_id: int) -> Task:
        return self._get(Task, "GET", f"/v1/experiments/{int(experiment_id)}/best")

    def pareto(self, experiment_id: int) -> Pareto:
        return self._get(Pareto, "GET", f"/v1/experiments/{int(experiment_id)}/pareto")

    def artifacts(self, experiment_id: int) -> list[Artifact]:
        """The experiment's artifacts (kept weights, running tasks' checkpoints, files)."""
        path = f"/v1/experiments/{int(experiment_id)}/artifacts"
        return self._get(ArtifactsPublic, "GET", path).data

    def task_artifacts(self, task_id: int) -> list[Artifact]:
        return self._get(ArtifactsPublic, "GET", f"/v1/tasks/{int(task_id)}/artifacts").data

    def download_artifact(self, task_id: int, name: str, path: str | Path) -> Path:
        """Stream a task's artifact into `path` (a directory: `path/name`) and return where it
        went. The bytes go to a temporary file beside it and are renamed into place only when
        whole and matching the sha256 the server recorded at upload: a cut-off or corrupted
        transfer raises `APIError` and leaves nothing at `path`."""
        if not re.fullmatch(ARTIFACT_NAME_PATTERN, name):
            raise APIError(f"bad artifact name {name!r}: one plain file name")
        target = Path(path)
        target = target / name if target.is_dir() else target
        url = f"/v1/tasks/{int(task_id)}/artifacts/{name}"
        try:
            with self.http.stream("GET", url) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _api_error(response)
                _save_verified(response, target, url)
        except httpx.HTTPError as exc:
            raise APIError(f"GET {url}: the download failed: {exc}") from None
        return target

    def workers(self) -> list[Worker]:
        return [
            worker for page in self._pages(WorkersPublic, "/v1/workers", {}) for worker in page.data
        ]


def _save_verified(response: httpx.Response, target: Path, url: str) -> None:
    expected = response.headers.get(SHA256_HEADER)
    if expected is None:
        raise APIError(f"GET {url}: the answer has no {SHA256_HEADER} header")
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        digest = hashlib.sha256()
        with os.fdopen(handle, "wb") as out:
            for chunk in response.iter_bytes(CHUNK_BYTES):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != expected.lower():
            raise APIError(f"GET {url}: sha256 {digest.hexdigest()} is not the stored {expected}")
        os.replace(temporary, target)
    finally:
        Path(temporary).unlink(missing_ok=True)


def _api_error(response: httpx.Response) -> APIError:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = response.text[:500]
    reason = _format_detail(detail)
    message = (
        f"{response.request.method} {response.request.url.path}: {response.status_code} {reason}"
    )
    return APIError(message, response.status_code, detail)


def _format_detail(detail: Any) -> str:
    """FastAPI's 422 detail is a list of {loc, msg}; show it as `field.path: message`."""
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                parts.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg")))
        return "; ".join(parts)
    return str(detail)
