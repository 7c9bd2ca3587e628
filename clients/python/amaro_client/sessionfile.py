"""Where the CLI keeps its session: ``$AMARO_CLIENT_HOME/session.json``, else
``~/.config/amaro/session.json``; mode 0600 (it holds a refresh token), replaced atomically so a
crash never leaves half a file. It also remembers the uploads still to finish (``uploads.json``)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from amaro_client.auth import Grant


def home(env: Mapping[str, str]) -> Path:
    if env.get("AMARO_CLIENT_HOME"):
        return Path(env["AMARO_CLIENT_HOME"])
    return Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "amaro"


def write_private(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    scratch = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.chmod(scratch, 0o600)  # an existing scratch file keeps its mode through O_CREAT
    os.replace(scratch, path)


class SessionFile:
    def __init__(self, folder: Path) -> None:
        self.path = folder / "session.json"
        self.uploads = folder / "uploads.json"

    def load(self) -> tuple[Grant, dict[str, str]] | None:
        """The stored grant and the URLs it was obtained from, or None when logged out."""
        try:
            data = json.loads(self.path.read_text())
            return Grant.from_json(data["grant"]), {k: str(v) for k, v in data.get("urls", {}).items()}
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    def save(self, grant: Grant, urls: dict[str, str]) -> None:
        write_private(self.path, {"grant": grant.to_json(), "urls": urls})

    def forget(self) -> None:
        self.path.unlink(missing_ok=True)
