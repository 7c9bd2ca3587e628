"""Media settings: one typed object the composition root builds from ``AMARO_MEDIA_*`` variables
(README "Configuration") and passes down. Nothing here reads the environment.

Sizes are bytes, durations seconds. The store is ``local`` (embedded mode, a folder under the data
dir) or ``s3`` (any S3-compatible API). Master keys come from a keyring file (generated on first use,
mode 0600) unless ``master_keys`` provides them (``kid:base64key,...``, newest last).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MiB = 1024 * 1024
GiB = 1024 * MiB
S3_MIN_PART = 5 * MiB
CHUNK_SIZE = 64 * 1024  # plaintext bytes per encrypted chunk; fixed, it is part of the format
STORES = ("local", "s3")


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
    part_size: int = 8 * MiB  # a multiple of CHUNK_SIZE (a part boundary is a chunk boundary)
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
    jobs_namespace: str = "nara"  # Redis namespace of the job stream the workers read (jobs.py)

    @property
    def chunks_per_part(self) -> int:
        return self.part_size // CHUNK_SIZE


@dataclass(frozen=True, slots=True)
class PlaybackSettings:
    """Signed ``/m/`` URLs (playback.py). ``url_secret`` empty: the root derives the signing keys
    from the token secrets."""

    url_secret: str = ""
    url_ttl_s: int = 6 * 3600
    url_base: str = ""  # an origin put in front of media URLs (a CDN); empty: node-relative
