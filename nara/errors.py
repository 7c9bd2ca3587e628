"""The NARA-1r exception tree.

Every failure a job can end in is one of these, and each carries a stable ``reason`` code that
travels, unchanged, as the ``reason`` of the uploader's media "failed" event::

    NaraError                       reason            retryable
    ├── MediaRejected               (the file itself is the problem; retrying cannot help)
    │   ├── EmptyInput              "empty"
    │   ├── NotMedia                "not_media"
    │   ├── UnsupportedFormat       "unsupported_format"
    │   ├── PlaylistRejected        "playlist_rejected"
    │   ├── Truncated               "truncated"
    │   ├── NoVideoStream           "no_video_stream"
    │   ├── TooLargeDimensions      "too_large_dimensions"
    │   ├── TooLong                 "too_long"
    │   ├── TooManyFrames           "too_many_frames"
    │   ├── FpsOutOfRange           "fps_out_of_range"
    │   └── InputTooLarge           "input_too_large"
    ├── BadJob                      "bad_job"         no: the job message itself is malformed
    ├── ToolTimeout                 "timeout"         no: a file that makes ffmpeg hang stays hostile
    ├── EncodeFailed                "encode_failed"   yes, within the job's retry budget
    ├── StorageFailed               "storage_failed"  yes
    ├── EventFailed                 "event_failed"    yes
    └── ToolMissing                 "tool_missing"    yes (an operator fixes the worker, the job waits)

Pure: raised by the probe parser and the planner as well as by the I/O edges.
"""

from __future__ import annotations


class NaraError(Exception):
    """Base of every NARA-1r failure; ``reason`` is the stable code sent to clients."""

    reason: str = "internal"
    retryable: bool = True

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.reason)
        self.detail = detail or self.reason


class MediaRejected(NaraError):
    """The upload itself is unusable or hostile: never retried."""

    reason = "rejected"
    retryable = False


class EmptyInput(MediaRejected):
    reason = "empty"


class NotMedia(MediaRejected):
    reason = "not_media"


class UnsupportedFormat(MediaRejected):
    reason = "unsupported_format"


class PlaylistRejected(MediaRejected):
    reason = "playlist_rejected"


class Truncated(MediaRejected):
    reason = "truncated"


class NoVideoStream(MediaRejected):
    reason = "no_video_stream"


class TooLargeDimensions(MediaRejected):
    reason = "too_large_dimensions"


class TooLong(MediaRejected):
    reason = "too_long"


class TooManyFrames(MediaRejected):
    reason = "too_many_frames"


class TooHeavy(MediaRejected):
    reason = "too_heavy"


class FpsOutOfRange(MediaRejected):
    reason = "fps_out_of_range"


class InputTooLarge(MediaRejected):
    reason = "input_too_large"


class BadJob(NaraError):
    reason = "bad_job"
    retryable = False


class ToolTimeout(NaraError):
    reason = "timeout"
    retryable = False


class EncodeFailed(NaraError):
    reason = "encode_failed"


class StorageFailed(NaraError):
    reason = "storage_failed"


class EventFailed(NaraError):
    reason = "event_failed"


class ToolMissing(NaraError):
    reason = "tool_missing"


REASONS: frozenset[str] = frozenset(
    cls.reason
    for cls in (
        EmptyInput, NotMedia, UnsupportedFormat, PlaylistRejected, Truncated, NoVideoStream,
        TooLargeDimensions, TooLong, TooManyFrames, TooHeavy, FpsOutOfRange, InputTooLarge, BadJob, ToolTimeout,
        EncodeFailed, StorageFailed, EventFailed, ToolMissing,
    )
)
