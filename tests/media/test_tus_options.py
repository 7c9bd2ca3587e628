"""OPTIONS and CORS."""

from __future__ import annotations

import httpx

from tests.media.conftest import User


async def test_options_advertises_the_server(client: httpx.AsyncClient) -> None:
    response = await client.options("/uploads/")
    assert response.status_code == 204
    assert response.headers["Tus-Version"] == "1.0.0"
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert set(response.headers["Tus-Extension"].split(",")) == {
        "creation", "creation-with-upload", "termination", "checksum", "expiration"}
    assert int(response.headers["Tus-Max-Size"]) > 0
    assert {"sha1", "sha256", "md5"} <= set(response.headers["Tus-Checksum-Algorithm"].split(","))


async def test_cors_preflight_allows_listed_origin_only(client: httpx.AsyncClient) -> None:
    ok = await client.options("/uploads/", headers={"Origin": "https://app.example",
                                                    "Access-Control-Request-Method": "PATCH"})
    assert ok.status_code == 204
    assert ok.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Upload-Offset" in ok.headers["Access-Control-Allow-Headers"]
    assert "PATCH" in ok.headers["Access-Control-Allow-Methods"]
    denied = await client.options("/uploads/", headers={"Origin": "https://evil.example",
                                                        "Access-Control-Request-Method": "PATCH"})
    assert denied.status_code == 403
    assert "Access-Control-Allow-Origin" not in denied.headers


async def test_cors_exposes_tus_headers(client: httpx.AsyncClient, user: User) -> None:
    response = await client.post("/uploads/", headers={**user.auth, "Upload-Length": "100",
                                                       "Origin": "https://app.example"})
    assert response.status_code == 201
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
    exposed = response.headers["Access-Control-Expose-Headers"]
    for name in ("Location", "Upload-Offset", "Upload-Expires", "Amaro-Post-Id"):
        assert name in exposed
