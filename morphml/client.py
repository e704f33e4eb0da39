"""`Client(url, token)`: a typed httpx client for the MorphML REST API (admin side).

Every method maps to one endpoint; list methods follow the pages for you. Errors raise
`APIError` carrying the HTTP status and the server's reason (its `detail`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict

from morphml.errors import MorphMLError
from morphml.space.base import Space

PAGE_SIZE = 200


class APIError(MorphMLError):
    """The server refused a request or could not be reached; `str()` says why."""

    def __init__(self, message: str, status_code: int | None = None, detail: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail


class _Public(BaseModel):
    # Unknown fields are kept: a newer server may add some.
    model_config = ConfigDict(extra="allow")


class Best(_Public):
    task_id: int
    metrics: dict[str, float]
    value: float
    candidate: dict[str, Any]


class Experiment(_Public):
    id: int
    name: str
    status: str
    spec: dict[str, Any]
    counts: dict[str, int]
    best: Best | None = None
    error: str | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def max_evaluations(self) -> int | None:
        budget = self.spec.get("budget") or {}
        value = budget.get("max_evaluations")
        return int(value) if value is not None else None

    @property
    def done(self) -> int:
        """Tasks that reached a final state."""
        return sum(self.counts.get(s, 0) for s in ("completed", "failed", "pruned", "cancelled"))


class Task(_Public):
    id: int
    experiment_id: int
    state: str
    candidate: dict[str, Any]
    attempt: int
    metrics: dict[str, float] | None = None
    intermediate: dict[str, Any] | None = None
    error: str | None = None
    worker_id: int | None = None
    created_at: datetime | None = None
    claimed_at: datetime | None = None
    finished_at: datetime | None = None


class Worker(_Public):
    id: int
    name: str
    host: str
    status: str
    labels: dict[str, str] = {}
    resources: dict[str, Any] = {}
    last_seen_at: datetime | None = None
    current_tasks: list[int] = []


class Pareto(_Public):
    objectives: list[dict[str, str]]
    data: list[Task]


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
        return response.json() if response.content else None

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            page = self._request(
                "GET", path, params={**params, "offset": offset, "limit": PAGE_SIZE}
            )
            yield from page["data"]
            offset += len(page["data"])
            if not page["data"] or offset >= page["count"]:
                return

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "/healthz")
        return result

    def create_experiment(self, spec: dict[str, Any]) -> Experiment:
        """Submit a spec (DESIGN.md); `search_space` may be a `Space` object or its dict."""
        body = dict(spec)
        if isinstance(body.get("search_space"), Space):
            body["search_space"] = body["search_space"].to_dict()
        return Experiment.model_validate(self._request("POST", "/v1/experiments", json=body))

    def experiments(self, status: str | None = None) -> list[Experiment]:
        params = {"status": status} if status else {}
        return [Experiment.model_validate(e) for e in self._pages("/v1/experiments", params)]

    def experiment(self, experiment_id: int) -> Experiment:
        data = self._request("GET", f"/v1/experiments/{experiment_id}")
        return Experiment.model_validate(data)

    def pause(self, experiment_id: int) -> Experiment:
        return self._lifecycle(experiment_id, "pause")

    def resume(self, experiment_id: int) -> Experiment:
        return self._lifecycle(experiment_id, "resume")

    def cancel(self, experiment_id: int) -> Experiment:
        return self._lifecycle(experiment_id, "cancel")

    def _lifecycle(self, experiment_id: int, action: str) -> Experiment:
        data = self._request("POST", f"/v1/experiments/{experiment_id}/{action}")
        return Experiment.model_validate(data)

    def tasks(self, experiment_id: int, state: str | None = None) -> list[Task]:
        params = {"state": state} if state else {}
        path = f"/v1/experiments/{experiment_id}/tasks"
        return [Task.model_validate(t) for t in self._pages(path, params)]

    def best(self, experiment_id: int) -> Task:
        return Task.model_validate(self._request("GET", f"/v1/experiments/{experiment_id}/best"))

    def pareto(self, experiment_id: int) -> Pareto:
        data = self._request("GET", f"/v1/experiments/{experiment_id}/pareto")
        return Pareto.model_validate(data)

    def workers(self) -> list[Worker]:
        return [Worker.model_validate(w) for w in self._pages("/v1/workers", {})]


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
