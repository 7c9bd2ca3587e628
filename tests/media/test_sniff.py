"""Content sniffing: allow-listed containers pass, everything else (whatever its name) does not."""

from __future__ import annotations

import pytest

from media.sniff import sniff


def ftyp(brand: bytes, *compatible: bytes) -> bytes:
    body = brand + b"\x00\x00\x02\x00" + b"".join(compatible)
    return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body + b"\x00" * 64


@pytest.mark.parametrize(("head", "expected"), [
    (ftyp(b"isom", b"isom", b"avc1"), "video/mp4"),
    (ftyp(b"qt  "), "video/quicktime"),
    (ftyp(b"3gp5"), "video/3gpp"),
    (ftyp(b"heic", b"mif1", b"heic"), "image/heic"),
    (ftyp(b"avif", b"mif1"), "image/avif"),
    (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm" + b"\x00" * 40, "video/webm"),
    (b"\x1a\x45\xdf\xa3\x9f\x42\x82\x88matroska" + b"\x00" * 40, "video/x-matroska"),
    (b"RIFF\x00\x00\x00\x00AVI LIST", "video/x-msvideo"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"),
    ((b"\x47" + b"\x00" * 187) * 3, "video/mp2t"),
])
def test_allowed(head: bytes, expected: str) -> None:
    assert sniff(head, 10_000) == expected


@pytest.mark.parametrize("head", [
    b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 100,      # Windows executable named video.mp4
    b"\x7fELF\x02\x01\x01" + b"\x00" * 100,              # ELF executable
    b"hello, this is just a text file pretending\n" * 5,
    b"%PDF-1.7\n",
    b"RIFF\x00\x00\x00\x00WAVEfmt ",                     # audio only
    ftyp(b"M4A "),                                       # audio-only brand
    b"<html><script>alert(1)</script>",
    b"",
])
def test_refused(head: bytes) -> None:
    assert sniff(head, 10_000) is None
