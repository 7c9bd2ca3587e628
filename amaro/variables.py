"""Environment variables as data: what each one accepts, how it is read, who reads it.

A ``Variable`` names one ``AMARO_*`` variable, the parser that turns its text into a value (or
says, in one line, what it accepts), the field of the settings tree it sets and the roles that
read it. ``settings.py`` holds the table; this module holds the machinery, which knows nothing of
the parts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class SettingError(ValueError):
    """A variable holds a value its parser refuses, or a combination of values cannot work. The
    message is one line and names the variable."""


@dataclass(frozen=True, slots=True)
class Parser(Generic[T]):
    """Text to value. ``accepts`` completes "must be ..." in an error and in ``--help``."""

    accepts: str
    read: Callable[[str], T]
    show: Callable[[Any], str] = str
    sensitive: bool = False  # never echoed in an error

    def __call__(self, raw: str) -> T:
        return self.read(raw)


def _fail(accepts: str) -> ValueError:
    return ValueError(accepts)


def integer(minimum: int = 0, maximum: int | None = None) -> Parser[int]:
    accepts = f"an integer >= {minimum}" if maximum is None else f"an integer from {minimum} to {maximum}"

    def read(raw: str) -> int:
        # ASCII digits only: int() would also take "²" or Arabic-Indic digits and "1_000".
        if not re.fullmatch(r"[+-]?[0-9]+", raw):
            raise _fail(accepts)
        value = int(raw)
        if value < minimum or (maximum is not None and value > maximum):
            raise _fail(accepts)
        return value

    return Parser(accepts, read)


_UNITS = {"": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}


def _show_size(value: int) -> str:
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        scale = _UNITS[unit.lower()]
        if value >= scale and value % scale == 0:
            return f"{value // scale}{unit}"
    return str(value)


def byte_size(minimum: int = 1) -> Parser[int]:
    """Bytes, as a plain integer or with a binary unit: ``8388608``, ``8MiB``, ``4GiB``."""
    accepts = f"a size in bytes >= {_show_size(minimum)} (an integer, or with KiB, MiB, GiB or TiB)"

    def read(raw: str) -> int:
        match = re.fullmatch(r"([0-9]+)\s*([KMGT]iB)?", raw, re.IGNORECASE)
        if match is None:
            raise _fail(accepts)
        value = int(match[1]) * _UNITS[(match[2] or "").lower()]
        if value < minimum:
            raise _fail(accepts)
        return value

    return Parser(accepts, read, _show_size)


def number(minimum: float = 0.0) -> Parser[float]:
    accepts = f"a number >= {minimum:g}"

    def read(raw: str) -> float:
        if not re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", raw):
            raise _fail(accepts)
        value = float(raw)
        if value < minimum:
            raise _fail(accepts)
        return value

    return Parser(accepts, read, lambda v: f"{v:g}")


def boolean() -> Parser[bool]:
    def read(raw: str) -> bool:
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise _fail("1 or 0 (true/false, yes/no, on/off)")

    return Parser("1 or 0 (true/false, yes/no, on/off)", read, lambda v: "1" if v else "0")


def choice(*values: str) -> Parser[str]:
    accepts = "one of " + ", ".join(values)

    def read(raw: str) -> str:
        lowered = raw.lower()
        if lowered not in values:
            raise _fail(accepts)
        return lowered

    return Parser(accepts, read)


def text(pattern: str = r".+", accepts: str = "a non-empty string") -> Parser[str]:
    compiled = re.compile(pattern)

    def read(raw: str) -> str:
        if not compiled.fullmatch(raw):
            raise _fail(accepts)
        return raw

    return Parser(accepts, read)


def secret(min_length: int) -> Parser[str]:
    accepts = f"at least {min_length} characters"

    def read(raw: str) -> str:
        if len(raw) < min_length:
            raise _fail(accepts)
        return raw

    return Parser(accepts, read, lambda v: "(set)" if v else "", sensitive=True)


def url(*schemes: str) -> Parser[str]:
    accepts = "a URL starting " + " or ".join(f"{s}://" for s in schemes)

    def read(raw: str) -> str:
        scheme, sep, rest = raw.partition("://")
        if not sep or scheme.lower() not in schemes or not rest:
            raise _fail(accepts)
        return raw

    return Parser(accepts, read)


def path() -> Parser[Path]:
    return Parser("a file system path", lambda raw: Path(raw))


def items(each: Parser[str] | None = None) -> Parser[tuple[str, ...]]:
    """A comma-separated list; empty items are skipped. ``each`` checks every item."""
    accepts = "a comma-separated list" + (f" of {each.accepts}" if each is not None else "")

    def read(raw: str) -> tuple[str, ...]:
        out = tuple(item.strip() for item in raw.split(",") if item.strip())
        if each is not None:
            for item in out:
                try:
                    each(item)
                except ValueError:
                    raise _fail(accepts) from None
        return out

    return Parser(accepts, read, lambda v: ",".join(v))


def origin() -> Parser[str]:
    """A browser origin as browsers send it: scheme, host and an optional port, nothing else."""
    return text(r"\*|https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:]+\](:[0-9]{1,5})?",
                "an origin such as https://app.example.org (scheme, host, optional port)")


def cpu_list() -> Parser[str]:
    accepts = "auto, all or a CPU list such as 1-3,6"

    def read(raw: str) -> str:
        lowered = raw.lower()
        if lowered in ("auto", "all") or re.fullmatch(r"\d+(-\d+)?(,\d+(-\d+)?)*", lowered):
            return lowered
        raise _fail(accepts)

    return Parser(accepts, read)


@dataclass(frozen=True, slots=True)
class Variable:
    """One ``AMARO_*`` variable.

    ``target`` is ``(section, field)`` in the settings tree (section names are the keys of
    ``settings.SECTIONS``), or ``None`` for a variable the tree builder reads by name. ``default``
    is the README's text for the default; ``None`` takes it from the target field's default."""

    name: str
    parser: Parser[Any]
    meaning: str
    roles: frozenset[str]
    target: tuple[str, str] | None = None
    default: str | None = None


def field_default(cls: type, name: str) -> Any:
    for f in fields(cls):
        if f.name == name:
            if f.default is not MISSING:
                return f.default
            if f.default_factory is not MISSING:
                return f.default_factory()
            break
    raise KeyError(f"{cls.__name__}.{name} has no default")


def read_values(variables: Sequence[Variable], env: Mapping[str, str]) -> dict[str, Any]:
    """Parse every variable that is set (blank counts as unset). Raises ``SettingError`` naming
    the first refused variable and what it accepts."""
    values: dict[str, Any] = {}
    for var in variables:
        raw = env.get(var.name, "").strip()
        if not raw:
            continue
        if "\x00" in raw:
            raise SettingError(f"{var.name} must not contain NUL bytes")
        try:
            values[var.name] = var.parser(raw)
        except ValueError:
            if var.parser.sensitive:
                raise SettingError(f"{var.name} must be {var.parser.accepts}, got {len(raw)} characters") from None
            shown = raw if len(raw) <= 40 else raw[:37] + "..."
            raise SettingError(f"{var.name} must be {var.parser.accepts}, got {shown!r}") from None
    return values
