"""Masking, so a token never reaches a screen, a log or `list` output by accident."""

from __future__ import annotations

import hashlib


def mask(secret: str | None) -> str | None:
    """`aoaA…x7Q2`: enough to tell two tokens apart, never enough to use one."""
    if secret is None:
        return None
    if len(secret) < 12:
        return "…"
    return f"{secret[:4]}…{secret[-4:]}"


def fingerprint(secret: str | None) -> str | None:
    """A short one-way hash, to recognise a token later without keeping a second copy of it."""
    if not secret:
        return None
    return hashlib.sha256(secret.encode()).hexdigest()[:16]
