"""Media settings: one typed object built from ``AMARO_MEDIA_*`` variables, passed down.

Sizes are bytes, durations seconds. The store is ``local`` (embedded mode, a folder under the data
dir) or ``s3`` (any S3-compatible API). Master keys come from a keyring file (generated on first use,
mode 0600) unless ``AMARO_MEDIA_MASTER_KEYS`` provides them (``kid:base64key,...``, newest last).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from realtime.config import ConfigError, env_float, env_int, env_list, env_str

MiB = 1024 * 1024
GiB = 1024 * MiB
S3_MIN_PART = 5 * MiB
CHUNK_SIZE = 64 * 1024  # plaintext bytes per encrypted chunk; fixed, it is part of the format


@dataclass(frozen=True, slots=True)
class MediaSettings:
    store: str = "local"
    local_dir: Path = Path(".amaro/objects")
    s3_endpoint: str = ""
    s3_bucket: str = "amaro-media"
    s3_region: str = "us-east-1"
    s3_access_key: str = ""
    s3_secret_key: str = ""
    max_file_size: int = 4 * GiB
    user_quota: int = 20 * GiB
    part_size: int = 8 * MiB
    user_concurrent_uploads: int = 3
    user_open_uploads: int = 20
    node_concurrent_uploads: int = 64
    bytes_in_flight: int = 256 * MiB
    upload_expiry_s: int = 24 * 3600
    idle_timeout_s: float = 30.0
    lock_ttl_s: float = 20.0
    keyring_path: Path = Path(".amaro/keyring.json")
    master_keys: tuple[str, ...] = ()
    key_rotation_s: int = 7 * 24 * 3600
    cleanup_interval_s: float = 60.0
    progress_interval_s: float = 1.0

    @property
    def chunks_per_part(self) -> int:
        return self.part_size // CHUNK_SIZE

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, data_dir: Path | None = None) -> MediaSettings:
        e = os.environ if env is None else env
        base = data_dir if data_dir is not None else Path(env_str(e, "AMARO_DATA_DIR", ".amaro"))
        part = env_int(e, "AMARO_MEDIA_PART_SIZE", 8 * MiB, minimum=CHUNK_SIZE)
        settings = cls(
            store=env_str(e, "AMARO_MEDIA_STORE", "local"),
            local_dir=Path(env_str(e, "AMARO_MEDIA_LOCAL_DIR", str(base / "objects"))),
            s3_endpoint=env_str(e, "AMARO_MEDIA_S3_ENDPOINT", ""),
            s3_bucket=env_str(e, "AMARO_MEDIA_S3_BUCKET", "amaro-media"),
            s3_region=env_str(e, "AMARO_MEDIA_S3_REGION", "us-east-1"),
            s3_access_key=env_str(e, "AMARO_MEDIA_S3_ACCESS_KEY_ID", ""),
            s3_secret_key=env_str(e, "AMARO_MEDIA_S3_SECRET_ACCESS_KEY", ""),
            max_file_size=env_int(e, "AMARO_MEDIA_MAX_FILE_SIZE", 4 * GiB, minimum=1),
            user_quota=env_int(e, "AMARO_MEDIA_USER_QUOTA", 20 * GiB, minimum=1),
            # Parts hold whole chunks so a part boundary is always a chunk boundary.
            part_size=part - part % CHUNK_SIZE,
            user_concurrent_uploads=env_int(e, "AMARO_MEDIA_USER_CONCURRENT_UPLOADS", 3, minimum=1),
            user_open_uploads=env_int(e, "AMARO_MEDIA_USER_OPEN_UPLOADS", 20, minimum=1),
            node_concurrent_uploads=env_int(e, "AMARO_MEDIA_NODE_CONCURRENT_UPLOADS", 64, minimum=1),
            bytes_in_flight=env_int(e, "AMARO_MEDIA_BYTES_IN_FLIGHT", 256 * MiB, minimum=1),
            upload_expiry_s=env_int(e, "AMARO_MEDIA_UPLOAD_EXPIRY", 24 * 3600, minimum=60),
            idle_timeout_s=env_float(e, "AMARO_MEDIA_IDLE_TIMEOUT", 30.0, minimum=0.1),
            lock_ttl_s=env_float(e, "AMARO_MEDIA_LOCK_TTL", 20.0, minimum=1.0),
            keyring_path=Path(env_str(e, "AMARO_MEDIA_KEYRING", str(base / "keyring.json"))),
            master_keys=env_list(e, "AMARO_MEDIA_MASTER_KEYS"),
            key_rotation_s=env_int(e, "AMARO_MEDIA_KEY_ROTATION", 7 * 24 * 3600),
            cleanup_interval_s=env_float(e, "AMARO_MEDIA_CLEANUP_INTERVAL", 60.0, minimum=0.1),
            progress_interval_s=env_float(e, "AMARO_MEDIA_PROGRESS_INTERVAL", 1.0, minimum=0.0),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.store not in ("local", "s3"):
            raise ConfigError(f"AMARO_MEDIA_STORE must be local or s3, got {self.store!r}")
        if self.part_size % CHUNK_SIZE:
            raise ConfigError(f"AMARO_MEDIA_PART_SIZE must be a multiple of {CHUNK_SIZE}")
        if self.store == "s3" and self.part_size < S3_MIN_PART:
            raise ConfigError("AMARO_MEDIA_PART_SIZE must be >= 5 MiB with the s3 store")
        if self.bytes_in_flight < self.part_size + CHUNK_SIZE:
            raise ConfigError("AMARO_MEDIA_BYTES_IN_FLIGHT must hold at least one part")
