"""The codec against the committed protocol/vectors.json (never regenerated here)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from protocol import frames as F
from protocol.codec import decode_client, decode_server, encode
from protocol.errors import ErrorCode, ProtocolError

from .make_vectors import VECTORS_PATH, build, from_json

VECTORS: list[dict[str, Any]] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
VALID = [v for v in VECTORS if "frame" in v]
INVALID = [v for v in VECTORS if "error" in v]
DECODERS = {"client": decode_client, "server": decode_server}


def test_vector_file_is_well_formed() -> None:
    names = [v["name"] + "/" + v["direction"] for v in VECTORS]
    assert len(names) == len(set(names))
    for v in VECTORS:
        assert v["direction"] in DECODERS
        assert ("frame" in v) != ("error" in v)
        bytes.fromhex(v["hex"])
    assert {v["error"] for v in INVALID} <= {int(c) for c in ErrorCode}


def test_every_frame_type_has_a_valid_vector_in_each_of_its_directions() -> None:
    covered = {(v["frame"]["t"], v["direction"]) for v in VALID}
    expected = {(cls.TYPE, "client") for cls in F.CLIENT_FRAMES} | {(cls.TYPE, "server") for cls in F.SERVER_FRAMES}
    assert expected <= covered


def test_the_invalid_vectors_cover_every_frame_level_code() -> None:
    codes = {v["error"] for v in INVALID}
    for code in (100, 101, 102, 103, 107, 402):
        assert code in codes


@pytest.mark.parametrize("vector", VALID, ids=lambda v: f"{v['direction']}:{v['name']}")
def test_valid_vector(vector: dict[str, Any]) -> None:
    frame = DECODERS[vector["direction"]](bytes.fromhex(vector["hex"]))
    assert frame == from_json(vector["frame"])
    assert encode(frame).hex() == vector["hex"]


@pytest.mark.parametrize("vector", INVALID, ids=lambda v: f"{v['direction']}:{v['name']}")
def test_invalid_vector(vector: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError) as info:
        DECODERS[vector["direction"]](bytes.fromhex(vector["hex"]))
    assert info.value.code == vector["error"]
    assert info.value.request_id == vector["request_id"]


def test_committed_file_matches_the_generator() -> None:
    """A protocol change without regenerated vectors fails here (run ``python -m tests.protocol.make_vectors``)."""
    assert build() == VECTORS
