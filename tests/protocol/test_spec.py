"""SPEC.md stays true: its worked example decodes, and its tables name every frame and code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from protocol import frames as F
from protocol.codec import decode_client, decode_server, encode
from protocol.errors import CloseCode, ErrorCode

SPEC = (Path(__file__).resolve().parents[2] / "protocol" / "SPEC.md").read_text(encoding="utf-8")
HEX_LINE = re.compile(r"^\s+([0-9a-f]+)\s*$")


def worked_example() -> list[tuple[str, str, bytes]]:
    section = SPEC.split("## 15. Worked example", 1)[1].split("## 16.", 1)[0]
    block = section.split("```", 2)[1]
    messages: list[tuple[str, str, list[str]]] = []
    for line in block.splitlines():
        head = re.match(r"^(C→S|S→C) (\S+)\s+([0-9a-f]+)$", line)
        if head:
            messages.append((head.group(1), head.group(2), [head.group(3)]))
        elif messages and (more := HEX_LINE.match(line)):
            messages[-1][2].append(more.group(1))
    return [(d, t, bytes.fromhex("".join(parts))) for d, t, parts in messages]


def test_worked_example_decodes_and_re_encodes() -> None:
    messages = worked_example()
    assert len(messages) >= 12
    for direction, frame_type, data in messages:
        frame = decode_client(data) if direction == "C→S" else decode_server(data)
        assert frame.TYPE == frame_type
        assert encode(frame) == data


@pytest.mark.parametrize("cls", tuple(dict.fromkeys(F.CLIENT_FRAMES + F.SERVER_FRAMES)), ids=lambda c: c.TYPE)
def test_frame_reference_lists_every_frame(cls: type[F.Frame]) -> None:
    assert f"| `{cls.TYPE}`" in SPEC or f"`{cls.TYPE}` /" in SPEC or f"/ `{cls.TYPE}`" in SPEC


def test_error_and_close_tables_are_complete() -> None:
    for code in ErrorCode:
        assert f"| {code.value} | {code.name} |" in SPEC
    for close in CloseCode:
        assert f"| {close.value} | {close.name} |" in SPEC
