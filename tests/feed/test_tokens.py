from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feed.tokens import TokenError, TokenSigner

SECRET = b"0123456789abcdef0123456789abcdef"


def test_issued_token_verifies_with_its_claims() -> None:
    signer = TokenSigner(SECRET, ttl_s=60)
    claims = signer.verify(signer.issue("user-1", "sess-1", now=1000), now=1010)
    assert (claims.user_id, claims.session_id, claims.issued_at, claims.expires_at) == ("user-1", "sess-1", 1000, 1060)


def test_expired_token_is_reported_as_expired() -> None:
    signer = TokenSigner(SECRET, ttl_s=60)
    token = signer.issue("u", "s", now=1000)
    with pytest.raises(TokenError) as info:
        signer.verify(token, now=1060)
    assert info.value.expired


def test_token_from_another_secret_is_rejected_and_not_expired() -> None:
    token = TokenSigner(b"another-secret-another-secret!!!").issue("u", "s")
    with pytest.raises(TokenError) as info:
        TokenSigner(SECRET).verify(token)
    assert not info.value.expired


def test_tampered_payload_is_rejected() -> None:
    signer = TokenSigner(SECRET)
    prefix, payload, mac = signer.issue("victim", "s").split(".")
    forged = TokenSigner(SECRET).issue("attacker", "s").split(".")[1]
    with pytest.raises(TokenError):
        signer.verify(f"{prefix}.{forged}.{mac}")
    with pytest.raises(TokenError):
        signer.verify(f"{prefix}.{payload}.{mac[:-2]}AA")


def test_rotation_keeps_tokens_of_the_previous_secret_valid() -> None:
    old = TokenSigner(SECRET)
    token = old.issue("u", "s")
    rotated = TokenSigner(b"new-secret-new-secret-new-secret", previous=(SECRET,))
    assert rotated.verify(token).user_id == "u"
    assert TokenSigner(b"new-secret-new-secret-new-secret").verify(rotated.issue("u", "s")).user_id == "u"
    with pytest.raises(TokenError):
        TokenSigner(b"new-secret-new-secret-new-secret").verify(token)


@given(st.text(max_size=2000))
def test_arbitrary_text_never_raises_anything_but_token_error(text: str) -> None:
    with pytest.raises(TokenError):
        TokenSigner(SECRET).verify(text)


@given(st.binary(max_size=300))
def test_arbitrary_payloads_with_prefix_never_crash(blob: bytes) -> None:
    import base64

    body = base64.urlsafe_b64encode(blob).decode().rstrip("=")
    with pytest.raises(TokenError):
        TokenSigner(SECRET).verify(f"at1.{body}.{body}")
