from __future__ import annotations

from feed.passwords import PasswordHasher, password_problem


async def test_hash_verifies_only_the_same_password() -> None:
    hasher = PasswordHasher(memory_kib=8192, iterations=1)
    encoded = await hasher.hash("river-song-of-the-road")
    assert encoded.startswith("$argon2id$")
    assert await hasher.verify("river-song-of-the-road", encoded)
    assert not await hasher.verify("river-song-of-the-roaD", encoded)
    assert not await hasher.verify("anything", None)


async def test_same_password_hashes_differently_each_time() -> None:
    hasher = PasswordHasher(memory_kib=8192, iterations=1)
    assert await hasher.hash("river-song-of-the-road") != await hasher.hash("river-song-of-the-road")


def test_weak_passwords_are_explained() -> None:
    assert password_problem("short", "mara") == "password must be at least 10 characters"
    assert password_problem("password123", "mara") == "password is too common"
    assert password_problem("mara-is-here-2026", "mara") == "password must not contain the username"
    assert password_problem("aaaaaaaaaaaa", "mara") == "password has too few distinct characters"
    assert password_problem("x" * 257, "mara") is not None
    assert password_problem("violin at the wedding 7", "mara") is None
