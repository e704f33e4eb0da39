"""The client's artifact download against a scripted server: whole and checked, or nothing."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from morphml.client import APIError, Client
from morphml.wire import SHA256_HEADER

DATA = b"weights" * 300_000  # a few chunks


def client_for(handler: Callable[[httpx.Request], httpx.Response]) -> Client:
    return Client("http://server", "t", http=httpx.Client(
        base_url="http://server", transport=httpx.MockTransport(handler)))  # fmt: skip


def serving(body: bytes, sha256: str | None) -> Client:
    headers = {SHA256_HEADER: sha256} if sha256 else {}
    return client_for(lambda request: httpx.Response(200, content=body, headers=headers))


def test_a_download_lands_whole_at_the_path(tmp_path: Path) -> None:
    client = serving(DATA, hashlib.sha256(DATA).hexdigest())
    path = client.download_artifact(3, "weights.pt", tmp_path / "best.pt")
    assert path == tmp_path / "best.pt" and path.read_bytes() == DATA
    assert client.download_artifact(3, "weights.pt", tmp_path) == tmp_path / "weights.pt"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "weights.pt"]


@pytest.mark.parametrize("sha256", [hashlib.sha256(b"other").hexdigest(), None])
def test_a_wrong_or_absent_checksum_leaves_nothing(tmp_path: Path, sha256: str | None) -> None:
    (tmp_path / "best.pt").write_bytes(b"the old file stays")
    with pytest.raises(APIError, match=r"sha256|X-MorphML-Sha256"):
        serving(DATA, sha256).download_artifact(3, "weights.pt", tmp_path / "best.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]
    assert (tmp_path / "best.pt").read_bytes() == b"the old file stays"


def test_a_refusal_is_an_api_error_with_the_servers_reason(tmp_path: Path) -> None:
    client = client_for(lambda r: httpx.Response(404, json={"detail": "task 3 has no artifact"}))
    with pytest.raises(APIError, match="404 task 3 has no artifact") as caught:
        client.download_artifact(3, "weights.pt", tmp_path / "w.pt")
    assert caught.value.status_code == 404 and list(tmp_path.iterdir()) == []


def test_a_cut_off_transfer_leaves_nothing(tmp_path: Path) -> None:
    def cut(request: httpx.Request) -> httpx.Response:
        def body() -> Iterator[bytes]:
            yield DATA[:1000]
            raise httpx.ReadError("connection reset")

        headers = {SHA256_HEADER: hashlib.sha256(DATA).hexdigest()}
        return httpx.Response(200, stream=_Stream(body()), headers=headers)

    with pytest.raises(APIError, match="download failed"):
        client_for(cut).download_artifact(3, "weights.pt", tmp_path / "w.pt")
    assert list(tmp_path.iterdir()) == []


def test_a_bad_name_is_refused_before_any_request(tmp_path: Path) -> None:
    def never(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request expected")

    with pytest.raises(APIError, match="bad artifact name"):
        client_for(never).download_artifact(3, "../etc/passwd", tmp_path)


class _Stream(httpx.SyncByteStream):
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
