"""Master keys by id. New objects use the newest key; every key ever added stays for reading.

Two sources:

* a keyring file (embedded mode, default ``<data_dir>/keyring.json``), generated on first use with
  mode 0600 and rotated in place under an exclusive ``flock`` so several processes sharing the data
  dir never lose a key; processes notice a rotation by the file's mtime;
* ``AMARO_MEDIA_MASTER_KEYS`` (``kid:base64(32 bytes),...``, newest last), for production secrets
  managers. Such a keyring is read-only: rotate by adding a key to the variable and restarting.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from media.config import MediaSettings
from media.errors import CryptoError, KeyNotFound

KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class MasterKey:
    key_id: str
    key: bytes
    created_at: float


def _new_key(now: float | None = None) -> MasterKey:
    created = time.time() if now is None else now
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(created))
    return MasterKey(f"mk-{stamp}-{secrets.token_hex(3)}", secrets.token_bytes(KEY_BYTES), created)


def parse_master_keys(items: tuple[str, ...]) -> list[MasterKey]:
    keys = []
    for item in items:
        kid, sep, encoded = item.partition(":")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raw = b""
        if not sep or not kid or len(raw) != KEY_BYTES or not kid.isascii():
            raise CryptoError("AMARO_MEDIA_MASTER_KEYS entries must be kid:base64(32 bytes)", code="bad_keyring")
        keys.append(MasterKey(kid, raw, 0.0))
    return keys


class Keyring:
    def __init__(self, keys: list[MasterKey], path: Path | None = None) -> None:
        self._keys = keys
        self._path = path
        self._mtime = self._stat()

    @classmethod
    def load(cls, settings: MediaSettings) -> Keyring:
        """The keyring ``settings`` describe; creates the file with one key on first use."""
        if settings.master_keys:
            return cls(parse_master_keys(settings.master_keys))
        path = settings.keyring_path
        with _locked(path):
            keys = _read_file(path)
            if not keys:
                keys = [_new_key()]
                _write_file(path, keys)
        return cls(keys, path)

    @property
    def writable(self) -> bool:
        return self._path is not None

    def _stat(self) -> float:
        if self._path is None:
            return 0.0
        try:
            return self._path.stat().st_mtime
        except FileNotFoundError:
            return 0.0

    def refresh(self) -> None:
        """Re-read the file if another process rotated it (cheap: one stat)."""
        if self._path is not None and self._stat() != self._mtime:
            self._keys = _read_file(self._path) or self._keys
            self._mtime = self._stat()

    def current(self) -> tuple[str, bytes]:
        self.refresh()
        newest = self._keys[-1]
        return newest.key_id, newest.key

    def newest(self) -> MasterKey:
        self.refresh()
        return self._keys[-1]

    def get(self, key_id: str) -> bytes:
        for key in self._keys:
            if key.key_id == key_id:
                return key.key
        self.refresh()
        for key in self._keys:
            if key.key_id == key_id:
                return key.key
        raise KeyNotFound(f"master key {key_id!r} is not in the keyring")

    def key_ids(self) -> list[str]:
        return [k.key_id for k in self._keys]

    def rotate_if_due(self, max_age_s: float, *, now: float | None = None) -> str | None:
        """Rotate when the newest key is older than ``max_age_s`` (checked under the file lock, so
        several processes sharing the keyring rotate once). Returns the new key id or None."""
        if self._path is None or max_age_s <= 0:
            return None
        current = time.time() if now is None else now
        with _locked(self._path):
            keys = _read_file(self._path) or self._keys
            if current - keys[-1].created_at < max_age_s:
                self._keys = keys
                return None
        return self.rotate(now=now)

    def rotate(self, *, now: float | None = None) -> str:
        """Add a new newest key; returns its id. Old keys stay, so old objects remain readable."""
        if self._path is None:
            raise CryptoError("keys from AMARO_MEDIA_MASTER_KEYS rotate by adding a key to the variable",
                              code="keyring_read_only")
        with _locked(self._path):
            keys = _read_file(self._path) or self._keys
            fresh = _new_key(now)
            keys.append(fresh)
            _write_file(self._path, keys)
        self._keys = keys
        self._mtime = self._stat()
        return fresh.key_id


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(f"{path}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _read_file(path: Path) -> list[MasterKey]:
    try:
        raw = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return []
    except ValueError:
        raise CryptoError(f"keyring {path} is not valid JSON", code="bad_keyring") from None
    return [MasterKey(k["id"], base64.b64decode(k["key"]), float(k["created_at"])) for k in raw["keys"]]


def _write_file(path: Path, keys: list[MasterKey]) -> None:
    doc = {"version": 1, "keys": [
        {"id": k.key_id, "key": base64.b64encode(k.key).decode(), "created_at": k.created_at} for k in keys]}
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(doc, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
