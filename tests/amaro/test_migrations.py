from __future__ import annotations

import asyncpg
import pytest

from amaro.migrations import Migration, MigrationError, discover, migrate, ordered


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


def test_a_file_runs_after_the_files_it_requires() -> None:
    a1 = Migration("feed", 1, "users", "")
    a2 = Migration("feed", 2, "needs_rooms", "-- requires: realtime/0001\n")
    a3 = Migration("feed", 3, "later", "")
    b1 = Migration("realtime", 1, "rooms", "")
    b2 = Migration("realtime", 2, "more", "")
    assert [f"{m.component}{m.version}" for m in ordered([a1, a2, a3, b1, b2])] == [
        "feed1", "realtime1", "realtime2", "feed2", "feed3"]


def test_a_cycle_of_requirements_is_refused() -> None:
    a = Migration("feed", 1, "a", "-- requires: realtime/0001\n")
    b = Migration("realtime", 1, "b", "-- requires: feed/0001\n")
    with pytest.raises(MigrationError, match="cycle"):
        ordered([a, b])
