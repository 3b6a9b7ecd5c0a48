"""The headless core of kiro-tui.

Nothing under this package may import Textual: the CLI, the refresh daemon and the
tests use it without a terminal UI (a test enforces this).
"""
