"""Content sniffing from the first bytes of an upload. The declared type is never trusted.

Only allow-listed video and image containers pass; the result is the content type NARA is told.
"""

from __future__ import annotations

SNIFF_BYTES = 512  # enough for every signature below (MPEG-TS needs three 188-byte packets)

_VIDEO_BRANDS = {
    b"isom": "video/mp4", b"iso2": "video/mp4", b"iso4": "video/mp4", b"iso5": "video/mp4",
    b"iso6": "video/mp4", b"mp41": "video/mp4", b"mp42": "video/mp4", b"avc1": "video/mp4",
    b"dash": "video/mp4", b"M4V ": "video/mp4", b"M4VP": "video/mp4", b"MSNV": "video/mp4",
    b"f4v ": "video/mp4", b"mmp4": "video/mp4",
    b"qt  ": "video/quicktime",
    b"3gp4": "video/3gpp", b"3gp5": "video/3gpp", b"3gp6": "video/3gpp", b"3gp7": "video/3gpp",
    b"3ge6": "video/3gpp", b"3ge7": "video/3gpp", b"3gg6": "video/3gpp", b"3g2a": "video/3gpp2",
}
_IMAGE_BRANDS = {
    b"heic": "image/heic", b"heix": "image/heic", b"heim": "image/heic", b"heis": "image/heic",
    b"hevc": "image/heic-sequence", b"hevx": "image/heic-sequence", b"mif1": "image/heif",
    b"msf1": "image/heif-sequence", b"avif": "image/avif", b"avis": "image/avif",
}


def _ftyp(head: bytes) -> str | None:
    if len(head) < 12 or head[4:8] != b"ftyp":
        return None
    size = int.from_bytes(head[0:4], "big")
    major = head[8:12]
    brands = [major] + [head[i:i + 4] for i in range(16, min(size, len(head)) - 3, 4)]
    # Image brands win over the generic mif1/msf1 ones; known video brands anywhere pass.
    for brand in brands:
        if brand in _IMAGE_BRANDS and brand not in (b"mif1", b"msf1"):
            return _IMAGE_BRANDS[brand]
    for brand in brands:
        if brand in _VIDEO_BRANDS:
            return _VIDEO_BRANDS[brand]
        if brand in _IMAGE_BRANDS:
            return _IMAGE_BRANDS[brand]
    return None


def _ebml(head: bytes) -> str | None:
    if not head.startswith(b"\x1a\x45\xdf\xa3"):
        return None
    # The DocType element (0x4282) names the flavour; default to matroska.
    at = head.find(b"\x42\x82", 4, 64)
    if at != -1 and b"webm" in head[at:at + 12]:
        return "video/webm"
    return "video/x-matroska"


def _mpeg_ts(head: bytes, total: int) -> bool:
    packets = min(3, total // 188)
    if packets == 0 or len(head) < (packets - 1) * 188 + 1:
        return False
    return all(head[i * 188] == 0x47 for i in range(packets))


def sniff(head: bytes, total_length: int) -> str | None:
    """Content type of an upload from its first ``min(SNIFF_BYTES, total_length)`` bytes, or None.

    ``total_length`` is the declared upload length; short files are judged on what they have.
    """
    if _ftyp(head) is not None:
        return _ftyp(head)
    if ebml := _ebml(head):
        return ebml
    if head.startswith(b"RIFF") and len(head) >= 12:
        if head[8:12] == b"AVI ":
            return "video/x-msvideo"
        if head[8:12] == b"WEBP":
            return "image/webp"
        return None
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if _mpeg_ts(head, total_length):
        return "video/mp2t"
    return None


def needed(total_length: int) -> int:
    """How many leading bytes ``sniff`` must see before it decides."""
    return min(SNIFF_BYTES, total_length)
