"""The settings tree: every AMARO_* variable read once, refused in one line before anything connects."""

from __future__ import annotations

import base64
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from amaro.settings import VARIABLES, X264_PRESETS, build, load, markdown_table, role_help, unknown
from amaro.variables import SettingError
from media.config import CHUNK_SIZE, MiB

ROOT = Path(__file__).resolve().parents[2]


class Listener:
    """A TCP port that counts the connections made to it (a stand-in address for Redis and
    PostgreSQL: a role that refuses its settings must never reach it)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    opened = Listener()
    yield opened
    opened.close()


def amaro(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AMARO_")}
    return subprocess.run([sys.executable, "-m", "amaro", *args], env={**base, **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


BAD = [
    ("AMARO_MEDIA_STORE", "gcs", "AMARO_MEDIA_STORE must be one of local, s3, got 'gcs'"),
    ("AMARO_HUB_FRAME_RATE", "fast", "AMARO_HUB_FRAME_RATE must be a number >= 1, got 'fast'"),
    ("AMARO_PORT", "abc", "AMARO_PORT must be an integer from 1 to 65535, got 'abc'"),
    ("AMARO_LOG_LEVEL", "verbose", "AMARO_LOG_LEVEL must be one of debug, info, warning, error, got 'verbose'"),
    ("AMARO_PORT", "99999", "AMARO_PORT must be an integer from 1 to 65535, got '99999'"),
    ("AMARO_NARA_PRESET", "turbo", "AMARO_NARA_PRESET must be one of"),
    ("AMARO_MEDIA_PART_SIZE", str(CHUNK_SIZE + 1), "AMARO_MEDIA_PART_SIZE must be a multiple of 65536"),
    ("AMARO_TOKEN_SECRET", "short", "AMARO_TOKEN_SECRET must be at least 16 characters, got 5 characters"),
]


@pytest.mark.parametrize("role", ["hub", "ingest", "worker"])
@pytest.mark.parametrize(("name", "value", "message"), BAD, ids=[f"{n}={v}" for n, v, _ in BAD])
def test_a_bad_setting_stops_a_role_with_one_line_before_it_connects(
        role: str, name: str, value: str, message: str, listener: Listener, tmp_path: Path) -> None:
    env = {"AMARO_REDIS_URL": f"redis://127.0.0.1:{listener.port}/0",
           "AMARO_DATABASE_URL": f"postgresql://amaro@127.0.0.1:{listener.port}/amaro",
           "AMARO_TOKEN_SECRET": "x" * 32, name: value}
    result = amaro([role], env, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"amaro: {message}"), result.stderr
    assert listener.accepted == 0


def test_dev_refuses_a_bad_setting_before_starting_anything(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = amaro(["dev", "--data-dir", str(data)], {"AMARO_HUB_FRAME_RATE": "fast"}, tmp_path)
    assert (result.returncode, result.stderr.strip()) == (
        2, "amaro: AMARO_HUB_FRAME_RATE must be a number >= 1, got 'fast'")
    assert not data.exists()  # no embedded server was started in it


def test_a_role_without_its_services_says_which_are_missing(tmp_path: Path) -> None:
    result = amaro(["hub"], {}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "amaro: AMARO_REDIS_URL and AMARO_DATABASE_URL must be set (or run `amaro dev`)"


def test_version_and_role_help(tmp_path: Path) -> None:
    version = amaro(["--version"], {}, tmp_path)
    assert version.returncode == 0 and re.fullmatch(r"amaro \S+\n", version.stdout)
    helped = amaro(["worker", "--help"], {}, tmp_path)
    assert helped.returncode == 0
    assert "AMARO_NARA_CRF" in helped.stdout and "an integer from 0 to 51" in helped.stdout
    assert "AMARO_HUB_OUTBOX_BYTES" not in helped.stdout  # a hub's setting, not a worker's


def test_every_variable_is_documented_in_the_readme_table() -> None:
    readme = (ROOT / "README.md").read_text()
    assert markdown_table() in readme, "README's configuration table is out of date: paste `amaro settings`"


def test_defaults_build_a_complete_tree() -> None:
    settings = load({})
    assert settings.node.port == 8000 and settings.node.ws_port == 8001
    assert settings.media.local_dir == Path(".amaro/objects")
    assert settings.media.keyring_path == Path(".amaro/keyring.json")
    assert settings.hub.node_id == settings.node.node_id
    assert settings.media.jobs_namespace == settings.nara.keys.namespace == "nara"
    assert build({}).hub == type(settings.hub)(node_id=build({}).node.node_id)  # the hub's own defaults


def test_values_reach_the_parts_settings() -> None:
    settings = load({
        "AMARO_DATA_DIR": "/srv/amaro", "AMARO_NODE_ID": "hub-7", "AMARO_DRAIN_TIMEOUT": "3",
        "AMARO_ALLOWED_ORIGINS": "https://app.example.org, http://localhost:5173",
        "AMARO_HUB_PRESENCE_TTL": "12", "AMARO_HUB_HISTORY_SIZE": "50", "AMARO_HUB_UPLOADS": "off",
        "AMARO_NARA_MAX_DIMENSION": "4096", "AMARO_NARA_CRF": "20", "AMARO_NARA_KEY_NAMESPACE": "staging:nara",
        "AMARO_NARA_LADDER_CPUS": "all", "AMARO_MEDIA_URL_BASE": "https://cdn.example.org/",
        "AMARO_MEDIA_STORE": "S3", "AMARO_MEDIA_PART_SIZE": str(8 * MiB), "AMARO_FFMPEG": "/usr/bin/ffmpeg",
    })
    assert settings.media.local_dir == Path("/srv/amaro/objects")
    assert (settings.hub.node_id, settings.hub.drain_timeout_s) == ("hub-7", 3.0)
    assert settings.hub.allowed_origins == ("https://app.example.org", "http://localhost:5173")
    assert (settings.hub.presence.ttl_s, settings.hub.broker.history_size) == (12.0, 50)
    assert settings.node.hub_uploads is False
    assert (settings.nara.limits.max_width, settings.nara.limits.max_height) == (4096, 4096)
    assert (settings.nara.policy.crf, settings.nara.policy.crf_low_rungs) == (20, 21)
    assert settings.nara.keys.jobs == "staging:nara:{jobs}" and settings.media.jobs_namespace == "staging:nara"
    assert settings.nara.limits.ladder_cpus == ""  # all: any CPU
    assert settings.playback.url_base == "https://cdn.example.org"
    assert settings.media.store == "s3"  # choices are case-insensitive
    assert settings.nara.ffmpeg == Path("/usr/bin/ffmpeg")


@pytest.mark.parametrize(("env", "message"), [
    ({"AMARO_ENV": "prod"}, "AMARO_TOKEN_SECRET must be set to at least 32 characters when AMARO_ENV=prod"),
    ({"AMARO_ENV": "prod", "AMARO_TOKEN_SECRET": "s" * 32},
     "AMARO_REDIS_URL and AMARO_DATABASE_URL must be set when AMARO_ENV=prod"),
    ({"AMARO_PORT": "9000", "AMARO_WS_PORT": "9000"}, "AMARO_WS_PORT must differ from AMARO_PORT"),
    ({"AMARO_DB_POOL_MIN": "5", "AMARO_DB_POOL_MAX": "2"}, "AMARO_DB_POOL_MIN must be <= AMARO_DB_POOL_MAX"),
    ({"AMARO_MEDIA_STORE": "s3", "AMARO_MEDIA_PART_SIZE": str(MiB)},
     "AMARO_MEDIA_PART_SIZE must be at least 5242880 with AMARO_MEDIA_STORE=s3"),
    ({"AMARO_MEDIA_BYTES_IN_FLIGHT": "1000"}, "AMARO_MEDIA_BYTES_IN_FLIGHT must hold a part and a chunk"),
    ({"AMARO_REDIS_URL": "http://redis:6379"}, "AMARO_REDIS_URL must be a URL starting redis://"),
    ({"AMARO_ALLOWED_ORIGINS": "https://ok.example, javascript:alert(1)"}, "AMARO_ALLOWED_ORIGINS must be"),
    ({"AMARO_MEDIA_MASTER_KEYS": "k1:bm90LTMyLWJ5dGVz"},
     "AMARO_MEDIA_MASTER_KEYS must be a comma-separated list of kid:base64(32 bytes) entries"),
    ({"AMARO_NARA_NICE": "20"}, "AMARO_NARA_NICE must be an integer from 0 to 19, got '20'"),
    ({"AMARO_INGEST_CPUS": "first"}, "AMARO_INGEST_CPUS must be auto, all or a CPU list such as 1-3,6"),
    ({"AMARO_HUB_UPLOADS": "maybe"}, "AMARO_HUB_UPLOADS must be 1 or 0"),
    ({"AMARO_ACCESS_TTL": "²"}, "AMARO_ACCESS_TTL must be an integer >= 10"),
    ({"AMARO_ACCESS_TTL": "1_000"}, "AMARO_ACCESS_TTL must be an integer >= 10"),
    ({"AMARO_PING_INTERVAL": "nan"}, "AMARO_PING_INTERVAL must be a number >= 1"),
    ({"AMARO_NODE_ID": "hub 1"}, "AMARO_NODE_ID must be letters, digits"),
    ({"AMARO_HOST": "a\x00b"}, "AMARO_HOST must not contain NUL bytes"),
])
def test_refusals_name_the_variable_and_what_it_accepts(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingError) as caught:
        load(env)
    assert str(caught.value).startswith(message), str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_secret_is_never_echoed() -> None:
    with pytest.raises(SettingError) as caught:
        load({"AMARO_MEDIA_URL_SECRET": "hunter2-but-short"})
    assert "hunter2" not in str(caught.value)


def test_blank_means_unset_and_unknown_names_are_reported() -> None:
    assert load({"AMARO_PORT": "  "}).node.port == 8000
    assert unknown({"AMARO_LOG_LVL": "debug", "AMARO_PORT": "1", "AMARO_TEST_REDIS_URL": "x", "HOME": "/"}) \
        == ["AMARO_LOG_LVL"]


def test_every_variable_names_its_roles_and_parses_its_own_default() -> None:
    for var in VARIABLES:
        assert var.roles, var.name
        assert var.name.startswith("AMARO_") and var.meaning
        assert var.name in role_help("dev") or "dev" not in var.roles
    assert set(X264_PRESETS) >= {"veryfast", "ultrafast"}


def test_the_settings_command_checks_this_environment(tmp_path: Path) -> None:
    assert amaro(["settings", "--check"], {"AMARO_PORT": "8080"}, tmp_path).returncode == 0
    bad = amaro(["settings", "--check"], {"AMARO_PORT": "eighty"}, tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    table = amaro(["settings"], {}, tmp_path)
    assert table.stdout.strip() == markdown_table()


def test_media_settings_follow_the_data_dir_and_read_s3_and_keys() -> None:
    key = base64.b64encode(b"k" * 32).decode()
    settings = load({"AMARO_DATA_DIR": "/srv/amaro", "AMARO_MEDIA_STORE": "s3",
                     "AMARO_MEDIA_S3_ENDPOINT": "http://127.0.0.1:9000", "AMARO_MEDIA_S3_BUCKET": "media-eu",
                     "AMARO_MEDIA_PART_SIZE": str(6 * MiB), "AMARO_MEDIA_MASTER_KEYS": f"a:{key},b:{key}"})
    media = settings.media
    assert (media.local_dir, media.keyring_path) == (Path("/srv/amaro/objects"), Path("/srv/amaro/keyring.json"))
    assert (media.key_rotation_s, media.upload_expiry_s) == (7 * 24 * 3600, 24 * 3600)
    assert (media.s3_endpoint, media.s3_bucket, media.part_size) == ("http://127.0.0.1:9000", "media-eu", 6 * MiB)
    assert media.master_keys == (f"a:{key}", f"b:{key}")
    with pytest.raises(SettingError, match="AMARO_MEDIA_STORE must be one of local, s3"):
        load({"AMARO_MEDIA_STORE": "ftp"})
    with pytest.raises(SettingError, match="AMARO_MEDIA_URL_SECRET must be at least 32 characters"):
        load({"AMARO_MEDIA_URL_SECRET": "short"})
    with pytest.raises(SettingError, match="AMARO_MEDIA_URL_TTL must be an integer >= 60"):
        load({"AMARO_MEDIA_URL_TTL": "59"})


def test_nara_settings_and_tools() -> None:
    nara = load({"AMARO_NARA_CONCURRENCY": "3", "AMARO_NARA_CONSUMER": "w-7", "AMARO_NARA_WORKDIR": "/tmp/x",
                 "AMARO_NARA_MAX_ATTEMPTS": "5", "AMARO_NARA_MAX_DURATION_S": "60", "AMARO_NARA_THREADS": "1",
                 "AMARO_NARA_CRF": "25", "AMARO_NARA_KEY_NAMESPACE": "staging:nara",
                 "AMARO_FFMPEG": "/opt/ff/ffmpeg", "AMARO_FFPROBE": "/opt/ff/ffprobe"}).nara
    assert (nara.concurrency, nara.consumer, nara.workdir, nara.max_attempts) == (3, "w-7", Path("/tmp/x"), 5)
    assert (nara.limits.max_duration_s, nara.limits.threads) == (60.0, 1)
    assert (nara.policy.crf, nara.policy.crf_low_rungs) == (25, 26)
    assert (nara.keys.jobs, nara.keys.dead) == ("staging:nara:{jobs}", "staging:nara:{dead}")
    assert (nara.ffmpeg, nara.ffprobe) == (Path("/opt/ff/ffmpeg"), Path("/opt/ff/ffprobe"))


@pytest.mark.parametrize(("value", "cpus"), [("all", ""), ("0", "0"), ("1-3,6", "1-3,6")])
def test_ladder_cpus(value: str, cpus: str) -> None:
    assert load({"AMARO_NARA_LADDER_CPUS": value}).nara.limits.ladder_cpus == cpus


def test_a_malformed_ladder_cpu_list_is_refused() -> None:
    with pytest.raises(SettingError, match="AMARO_NARA_LADDER_CPUS must be auto, all or a CPU list"):
        load({"AMARO_NARA_LADDER_CPUS": "1 2"})


@pytest.mark.parametrize(("raw", "value"), [("8388608", 8 * MiB), ("8MiB", 8 * MiB), ("16 mib", 16 * MiB),
                                            ("2GiB", 2048 * MiB)])
def test_sizes_take_bytes_or_binary_units(raw: str, value: int) -> None:
    assert load({"AMARO_MEDIA_MAX_FILE_SIZE": raw}).media.max_file_size == value


@pytest.mark.parametrize("raw", ["8MB", "8.5MiB", "-1", "lots"])
def test_a_size_in_other_words_is_refused(raw: str) -> None:
    with pytest.raises(SettingError, match="AMARO_MEDIA_MAX_FILE_SIZE must be a size in bytes"):
        load({"AMARO_MEDIA_MAX_FILE_SIZE": raw})
