"""Copy text: the system clipboard via pyperclip, else the terminal's (OSC 52, works over SSH).

Returns how it was done, so the screen can say which worked.
"""

from __future__ import annotations

from textual.app import App

SYSTEM = "copied to the clipboard"
TERMINAL = "sent to your terminal's clipboard (OSC 52)"


def copy_text(app: App[object], text: str) -> str:
    copier = getattr(app, "system_copy", None)
    if copier is not None:
        try:
            copier(text)
            return SYSTEM
        except Exception:  # noqa: BLE001 - pyperclip raises its own types, or anything from the OS
            pass
    app.copy_to_clipboard(text)
    return TERMINAL


def pyperclip_copy(text: str) -> None:
    import pyperclip

    pyperclip.copy(text)
