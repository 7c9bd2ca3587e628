from __future__ import annotations

import asyncpg
import pytest

from amaro.migrations import Migration, MigrationError, discover, migrate


def test_discover_orders_feed_first() -> None:
    found = discover()
    assert found, "no migrations found"
    assert found[0].component == "feed" and found[0].version == 1
    keys = [(m.component, m.version) for m in found]
    assert len(keys) == len(set(keys))


async def test_migrate_is_idempotent_and_refuses_edited_files(db: asyncpg.Pool) -> None:
    async with db.acquire() as conn:
        assert await migrate(conn) == []  # the fixture already migrated this database
        extra = Migration("feedtest", 1, "probe", "CREATE TABLE migration_probe (x int)")
        assert await migrate(conn, [extra]) == ["feedtest/0001_probe"]
        assert await migrate(conn, [extra]) == []
        edited = Migration("feedtest", 1, "probe", "CREATE TABLE migration_probe (y int)")
        with pytest.raises(MigrationError):
            await migrate(conn, [edited])
        await conn.execute("DROP TABLE migration_probe")
        await conn.execute("DELETE FROM amaro_migrations WHERE component = 'feedtest'")
