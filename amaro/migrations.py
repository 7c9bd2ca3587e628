"""Schema migrations: ``amaro migrate``.

Each part of the system keeps its own numbered SQL files in ``<package>/sql/NNNN_name.sql``. They
are applied in component order (feed first: everything references users), each file once, each in
its own transaction, under an advisory lock so that several nodes starting at once migrate once.
A file that needs another part's table first says so on a line of its own, ``-- requires:
realtime/0001``; it then runs after that file (and every later file of its own part after it).
A file that changed after it was applied is refused: migrations are append-only.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg
import structlog

COMPONENTS: tuple[str, ...] = ("feed", "realtime", "media", "nara")
_LOCK_KEY = 0x616D61726F  # "amaro"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_REQUIRES = re.compile(r"^--\s*requires:\s*([a-z_]+)/(\d{4})\s*$", re.MULTILINE)

log = structlog.get_logger(__name__)


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Migration:
    component: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def requires(self) -> list[tuple[str, int]]:
        return [(m[1], int(m[2])) for m in _REQUIRES.finditer(self.sql)]


def ordered(migrations: list[Migration]) -> list[Migration]:
    """Component order, each part's files in version order, except that a file runs only after
    the files it requires: a part waits at such a file until they ran."""
    queues: dict[str, list[Migration]] = {}
    for m in migrations:
        queues.setdefault(m.component, []).append(m)
    for queue in queues.values():
        queue.sort(key=lambda m: m.version)
    known = {(m.component, m.version) for m in migrations}
    done: set[tuple[str, int]] = set()
    out: list[Migration] = []
    while any(queues.values()):
        progressed = False
        for queue in queues.values():
            while queue and all(r in done or r not in known for r in queue[0].requires):
                m = queue.pop(0)
                out.append(m)
                done.add((m.component, m.version))
                progressed = True
        if not progressed:
            stuck = [f"{q[0].component}/{q[0].version:04d}" for q in queues.values() if q]
            raise MigrationError(f"migrations require each other in a cycle: {', '.join(stuck)}")
    return out


def discover(components: tuple[str, ...] = COMPONENTS) -> list[Migration]:
    found: list[Migration] = []
    for component in components:
        folder = resources.files(component).joinpath("sql")
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            match = _NAME.match(entry.name)
            if match is None:
                continue
            found.append(Migration(component, int(match[1]), match[2], entry.read_text("utf-8")))
    return ordered(found)


async def migrate(conn: asyncpg.Connection, migrations: list[Migration] | None = None) -> list[str]:
    """Apply every pending migration; return the names applied."""
    pending = discover() if migrations is None else migrations
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS amaro_migrations (
                   component text NOT NULL, version int NOT NULL, name text NOT NULL,
                   checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),
                   PRIMARY KEY (component, version))"""
        )
        rows = await conn.fetch("SELECT component, version, checksum FROM amaro_migrations")
        done = {(r["component"], r["version"]): r["checksum"] for r in rows}
        for m in pending:
            previous = done.get((m.component, m.version))
            if previous is not None:
                if previous != m.checksum:
                    raise MigrationError(
                        f"{m.component}/sql/{m.version:04d}_{m.name}.sql changed after it was applied; "
                        "add a new migration instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO amaro_migrations (component, version, name, checksum) VALUES ($1, $2, $3, $4)",
                    m.component, m.version, m.name, m.checksum,
                )
            applied_now.append(f"{m.component}/{m.version:04d}_{m.name}")
            log.info("migration_applied", component=m.component, version=m.version, name=m.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now
