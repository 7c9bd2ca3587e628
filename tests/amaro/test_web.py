"""The web app as a real node serves it: its files under a strict CSP, its config naming the node's
real socket, and every other route still winning over the app's catch-all."""

from __future__ import annotations

import re
import secrets
from html.parser import HTMLParser
from pathlib import Path

import httpx
import msgpack
import websockets
from starlette.applications import Starlette

from amaro.web import BUNDLED, web_routes
from tests.conftest import RunningNode

# What the app itself must never do: inject HTML or evaluate strings (the CSP would block the
# latter; the former is how user text would become markup).
FORBIDDEN_IN_APP = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function")


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.script_text.append(data)


def directives(csp: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in csp.split(";"):
        name, *values = part.split()
        out[name] = values
    return out


async def test_index_is_served_with_a_strict_policy(running_node: RunningNode) -> None:
    async with httpx.AsyncClient(base_url=running_node.http_url) as http:
        page = await http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "<title>Amaro Than</title>" in page.text
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["cache-control"] == "no-cache"
        csp = directives(page.headers["content-security-policy"])
        assert csp["default-src"] == ["'self'"]
        assert csp["script-src"] == ["'self'"]
        assert csp["style-src"] == ["'self'"]
        assert csp["object-src"] == ["'none'"]
        assert csp["base-uri"] == ["'none'"]
        assert csp["frame-ancestors"] == ["'none'"]
        assert csp["form-action"] == ["'self'"]
        assert csp["media-src"] == ["'self'", "blob:"]
        assert csp["worker-src"] == ["'self'", "blob:"]
        assert csp["connect-src"] == ["'self'", f"ws://127.0.0.1:{running_node.parts.ws_port}/ws"]
        again = await http.get("/", headers={"If-None-Match": page.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        plain = await http.get("/", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers and plain.text == page.text
        assert plain.headers["etag"] != page.headers["etag"]  # one validator per encoding
        zipped = await http.get("/app.js", headers={"Accept-Encoding": "gzip"})
        assert zipped.headers["content-encoding"] == "gzip"
        assert zipped.headers["content-type"].startswith("text/javascript")


async def test_html_and_javascript_carry_no_inline_code(running_node: RunningNode) -> None:
    async with httpx.AsyncClient(base_url=running_node.http_url) as http:
        page = await http.get("/")
        tags = Tags()
        tags.feed(page.text)
        scripts = [attrs for tag, attrs in tags.tags if tag == "script"]
        assert scripts == [{"type": "module", "src": "app.js"}]
        assert tags.script_text == []
        for tag, attrs in tags.tags:
            assert tag != "style"
            assert "style" not in attrs, tag
            assert not [a for a in attrs if a.startswith("on")], tag
        app = await http.get("/app.js")
        assert app.status_code == 200
        # Every chunk the entry imports is served, hashed and cached for good.
        chunks = set(re.findall(r"assets/[A-Za-z0-9_.-]+\.js", app.text))
        assert chunks, "hls.js is a chunk of its own"
        for chunk in chunks:
            answer = await http.get("/" + chunk)
            assert answer.status_code == 200
            assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
    sources = Path(__file__).resolve().parents[2] / "clients" / "web" / "src"
    for path in sources.rglob("*.js"):
        text = path.read_text()
        for word in FORBIDDEN_IN_APP:
            assert word not in text, f"{path.name} uses {word}"
        assert not re.search(r"""setAttribute\(\s*["']style""", text), path.name
    for path in BUNDLED.rglob("*.js"):
        assert "<script" not in path.read_text().lower(), path.name


async def test_config_names_the_real_socket_and_it_answers(running_node: RunningNode) -> None:
    port = running_node.parts.ws_port
    async with httpx.AsyncClient(base_url=running_node.http_url) as http:
        config = (await http.get("/app/config.json")).json()
        assert config == {"ws": [f"ws://127.0.0.1:{port}/ws"], "uploads": "/uploads/", "api": "/api/v1"}
        name = f"web{secrets.token_hex(4)}"
        grant = (await http.post("/api/v1/auth/signup",
                                 json={"username": name, "password": "a-long-passphrase-1"})).json()
    origin = running_node.http_url  # the page's own origin, as a browser sends it
    async with websockets.connect(config["ws"][0], origin=websockets.Origin(origin)) as ws:
        await ws.send(msgpack.packb({"t": "hello", "token": grant["access_token"], "client": "test-web"}))
        welcome = msgpack.unpackb(await ws.recv(decode=False))
        assert welcome["t"] == "welcome" and welcome["user"] == grant["user"]["id"]


async def test_other_routes_still_win(running_node: RunningNode) -> None:
    async with httpx.AsyncClient(base_url=running_node.http_url) as http:
        assert (await http.get("/healthz")).text == "ok"
        openapi = await http.get("/api/v1/openapi.json")
        assert openapi.status_code == 200 and openapi.json()["openapi"].startswith("3.1")
        assert (await http.get("/api/v1/nope")).status_code == 404
        assert (await http.get("/nope")).status_code == 404
        assert (await http.post("/")).status_code == 404
        assert (await http.get("/%2e%2e/pyproject.toml")).status_code == 404
        assert (await http.get("/..%2fpyproject.toml")).status_code == 404


async def test_public_socket_urls_and_https_and_no_app(tmp_path: Path) -> None:
    public = ("wss://live.example.org/ws", "wss://live2.example.org/ws")
    app = Starlette(routes=web_routes("bundled", public, "https://cdn.example.org/media", lambda: 8001))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://app.example.org") as http:
        assert (await http.get("/app/config.json")).json()["ws"] == list(public)
        csp = directives((await http.get("/")).headers["content-security-policy"])
        assert csp["connect-src"] == ["'self'", *public, "https://cdn.example.org"]
        assert csp["media-src"] == ["'self'", "blob:", "https://cdn.example.org"]
    derived = Starlette(routes=web_routes("bundled", (), "", lambda: 9001))
    transport = httpx.ASGITransport(app=derived)
    async with httpx.AsyncClient(transport=transport, base_url="https://app.example.org") as http:
        assert (await http.get("/app/config.json")).json()["ws"] == ["wss://app.example.org:9001/ws"]
    (tmp_path / "index.html").write_text("<!doctype html><title>mine</title>")
    own = Starlette(routes=web_routes(str(tmp_path), (), "", lambda: 9001))
    none = Starlette(routes=web_routes("none", (), "", lambda: 9001))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=own), base_url="http://h") as http:
        assert "mine" in (await http.get("/")).text
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=none), base_url="http://h") as http:
        assert (await http.get("/")).status_code == 404
        assert (await http.get("/app/config.json")).status_code == 200
