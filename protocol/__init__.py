"""Amaro wire protocol v1: frames, msgpack codec, validation, error codes. Pure code, no I/O."""

__version__ = "1"
