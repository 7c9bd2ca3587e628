from __future__ import annotations

from realtime.outbox import Outbox, Verdict


def test_frames_come_out_in_order_as_the_same_bytes_objects() -> None:
    box = Outbox(max_bytes=100)
    frames = [bytes([i]) * 10 for i in range(3)]
    for f in frames:
        assert box.push(f) is Verdict.QUEUED
    out = box.take()
    assert out == frames and all(a is b for a, b in zip(out, frames, strict=True))
    assert box.bytes == 0 and len(box) == 0


def test_ephemeral_frames_are_refused_past_their_share() -> None:
    box = Outbox(max_bytes=100, ephemeral_bytes=30)
    assert box.push(b"t" * 20, ephemeral=True) is Verdict.QUEUED
    assert box.push(b"t" * 20, ephemeral=True) is Verdict.DROPPED
    assert box.dropped == 1
    assert box.push(b"d" * 60) is Verdict.QUEUED  # durable frames still fit


def test_durable_frames_evict_ephemeral_ones_before_overflowing() -> None:
    box = Outbox(max_bytes=100, ephemeral_bytes=50)
    box.push(b"d" * 40)
    box.push(b"t" * 40, ephemeral=True)
    assert box.push(b"D" * 50) is Verdict.QUEUED
    assert box.take() == [b"d" * 40, b"D" * 50]
    assert box.dropped == 1


def test_a_client_that_cannot_keep_up_overflows_once() -> None:
    box = Outbox(max_bytes=100)
    box.push(b"d" * 90)
    assert box.push(b"d" * 20) is Verdict.OVERFLOW
    assert box.closed
    assert box.push(b"x") is Verdict.DROPPED  # nothing more is queued for a connection being closed
