"""Copy text from the TUI: core/clipboard.py's one way (the system clipboard, else the
terminal's through Textual's OSC 52), and say which worked so the screen can tell.
"""

from __future__ import annotations

from textual.app import App

from kiro_tui.core.clipboard import SYSTEM, TERMINAL
from kiro_tui.core.clipboard import copy_text as copy_either
from kiro_tui.core.clipboard import system_copy as pyperclip_copy

__all__ = ["SYSTEM", "TERMINAL", "copy_text", "pyperclip_copy"]


def copy_text(app: App[object], text: str) -> str:
    return copy_either(text, getattr(app, "system_copy", None), app.copy_to_clipboard) or TERMINAL
