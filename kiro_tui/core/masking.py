"""Masking, so a token never reaches a screen, a log or `list` output by accident."""

from __future__ import annotations


def mask(secret: str | None) -> str | None:
    """`aoaA…x7Q2`: enough to tell two tokens apart, never enough to use one."""
    if secret is None:
        return None
    if len(secret) < 12:
        return "…"
    return f"{secret[:4]}…{secret[-4:]}"
