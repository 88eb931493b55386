"""Limits before work, against the real server: a caller without a valid key is answered before its
body is read, and no body, chunked or not, is buffered past its route's limit."""

from __future__ import annotations

import socket
import time

import httpx
import psutil
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.api.conftest import Keys, serve

MiB = 1024 * 1024
HUGE = 512 * MiB
"""What the hostile tester streamed: 512 MiB, chunked, so no Content-Length warns the server."""


def chunked_body(total: int, block: int = MiB):
    """A chunked multipart body of ``total`` bytes, one file part that never ends, generated as it is sent
    (the client holds 1 MiB at a time)."""
    yield b'--xyz\r\nContent-Disposition: form-data; name="archive"; filename="a.zip"\r\n\r\n'
    piece = b"x" * block
    for _ in range(total // block):
        yield piece


@pytest.fixture
def server(migrated, keys, tmp_path):
    # uploads limited to 8 MiB so the upload route's limit is reached within the test's time
    with serve(migrated, tmp_path / "api.log", FOUNDRY_MAX_UPLOAD_BYTES=str(8 * MiB)) as running:
        yield running


def rss(server) -> int:
    return psutil.Process(server.pid).memory_info().rss


def post_stream(server, path: str, headers: dict, total: int = HUGE) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.post(server.base + path, content=chunked_body(total), timeout=60,
                          headers={"Content-Type": "multipart/form-data; boundary=xyz", **headers})
    return response, time.monotonic() - started


def test_a_chunked_512_mib_body_without_a_key_is_refused_at_once_and_memory_stays_flat(server, keys):
    before = rss(server)
    for path in ("/v1/catalog/imports", "/v1/generations", "/v1/provenance/verify", "/v1/datasets"):
        response, seconds = post_stream(server, path, {})
        assert (response.status_code, response.json()["error"]["code"]) == (401, "missing_api_key"), path
        assert seconds < 10, (path, seconds)
        wrong, _ = post_stream(server, path, Keys.headers("fdy_nope_nope"))
        assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "invalid_api_key"), path
    assert rss(server) - before < 50 * MiB


def test_chunked_bodies_with_a_key_stop_at_their_route_limit(server, keys):
    before = rss(server)
    admin = Keys.headers(keys.admin)
    for path, limit in (("/v1/generations", MiB), ("/v1/datasets", MiB), ("/v1/catalog/imports", 8 * MiB)):
        response, seconds = post_stream(server, path, admin)
        assert (response.status_code, response.json()["error"]["code"]) == (413, "request_too_large"), path
        assert str(limit) in response.json()["error"]["message"] and seconds < 20, (path, seconds)
    # a customer key may not import catalogs: refused before its upload is read, not after
    response, seconds = post_stream(server, "/v1/catalog/imports", Keys.headers(keys.customer))
    assert (response.status_code, response.json()["error"]["code"]) == (403, "forbidden") and seconds < 10
    assert rss(server) - before < 50 * MiB


def raw_request(server, head: str, first_chunk: bytes) -> bytes:
    """Send the head and one chunk of a body that never ends; return whatever the server answers."""
    host, port = server.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(head.encode() + f"{len(first_chunk):x}\r\n".encode() + first_chunk + b"\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = connection.recv(65536)
            if not data:
                break
            answer += data
        return answer


@pytest.mark.parametrize("auth, status", [("", b"401"), ("customer", b"403")])
def test_refusals_come_before_the_body_is_read(server, keys, auth, status):
    """The server answers while the client is still in the middle of its body."""
    authorization = f"Authorization: Bearer {keys.customer}\r\n" if auth else ""
    head = ("POST /v1/catalog/imports HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
            f"Content-Type: multipart/form-data; boundary=xyz\r\n{authorization}\r\n")
    answer = raw_request(server, head, b"--xyz\r\n")
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:200]


def test_declared_lengths_over_the_limit_are_refused_unread(migrated, keys):
    with TestClient(create_app(migrated)) as client:
        response = client.post("/v1/generations", headers={**Keys.headers(keys.customer), "Content-Length": str(HUGE)},
                               content=b"{}")
        assert (response.status_code, response.json()["error"]["code"]) == (413, "request_too_large")
        anonymous = client.post("/v1/generations", headers={"Content-Length": str(HUGE)}, content=b"{}")
        assert anonymous.status_code == 401  # who is asking is settled first
        assert client.get("/v1/health").status_code == 200  # the one public path
