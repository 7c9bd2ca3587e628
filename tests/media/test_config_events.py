"""MediaSettings from the environment, and the progress throttle (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from media.config import CHUNK_SIZE, MediaSettings, MiB
from media.events import ProgressThrottle
from realtime.config import ConfigError


def test_defaults_follow_the_data_dir() -> None:
    media = MediaSettings.from_env({"AMARO_DATA_DIR": "/srv/amaro"})
    assert media.store == "local"
    assert media.local_dir == Path("/srv/amaro/objects")
    assert media.keyring_path == Path("/srv/amaro/keyring.json")
    assert media.key_rotation_s == 7 * 24 * 3600 and media.upload_expiry_s == 24 * 3600
    assert media.part_size % CHUNK_SIZE == 0


def test_s3_settings_and_validation() -> None:
    media = MediaSettings.from_env({
        "AMARO_MEDIA_STORE": "s3", "AMARO_MEDIA_S3_ENDPOINT": "http://s3:9000", "AMARO_MEDIA_S3_BUCKET": "b",
        "AMARO_MEDIA_PART_SIZE": str(6 * MiB + 5), "AMARO_MEDIA_MASTER_KEYS": "a:QUFB,b:QkJC"})
    assert media.s3_endpoint == "http://s3:9000" and media.s3_bucket == "b"
    assert media.part_size == 6 * MiB  # rounded down to whole chunks
    assert media.master_keys == ("a:QUFB", "b:QkJC")
    with pytest.raises(ConfigError):
        MediaSettings.from_env({"AMARO_MEDIA_STORE": "s3", "AMARO_MEDIA_PART_SIZE": str(MiB)})
    with pytest.raises(ConfigError):
        MediaSettings.from_env({"AMARO_MEDIA_STORE": "ftp"})
    with pytest.raises(ConfigError):
        MediaSettings.from_env({"AMARO_MEDIA_BYTES_IN_FLIGHT": "1000"})


def test_progress_is_throttled_by_time_and_step() -> None:
    throttle = ProgressThrottle(length=1000, interval_s=1.0, step=0.05)
    assert throttle.due(0, now=0.0)
    assert not throttle.due(10, now=0.1)
    assert throttle.due(60, now=0.2)        # 5% passed
    assert not throttle.due(70, now=0.3)
    assert throttle.due(71, now=1.3)        # a second passed
    assert throttle.due(1000, now=1.31)     # the end is always reported
    assert not throttle.due(1000, now=1.32)
