"""Copy a short text for a person (a device code, a token): the system clipboard through
pyperclip, else the terminal's own (OSC 52, which also works over SSH). The one copy logic of the
CLI and the TUI; each says which worked, because only the caller knows whether it did.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

SYSTEM = "copied to the clipboard"
TERMINAL = "sent to your terminal's clipboard (OSC 52)"


def system_copy(text: str) -> None:
    """The system clipboard (pyperclip); raises when there is none here (no display, no xclip)."""
    import pyperclip

    pyperclip.copy(text)


def osc52(text: str) -> str:
    """The escape sequence asking the terminal to put `text` on its clipboard."""
    return f"\x1b]52;c;{base64.b64encode(text.encode()).decode()}\x07"


def copy_text(text: str, system: Callable[[str], None] | None, terminal: Callable[[str], None] | None) -> str | None:
    """Copy `text` with `system` (usually `system_copy`), else hand it to `terminal` (OSC 52).
    Returns `SYSTEM` or `TERMINAL` for what was done, None when neither could be tried."""
    if system is not None:
        try:
            system(text)
            return SYSTEM
        except Exception:  # noqa: BLE001 - pyperclip raises its own types, or anything from the OS
            pass
    if terminal is None:
        return None
    terminal(text)
    return TERMINAL
