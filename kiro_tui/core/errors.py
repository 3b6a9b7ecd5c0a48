"""Errors a person can act on.

Every failure that reaches the command line is a `KiroTuiError`: its text is one line
that names the file or field at fault and says what to do. Tracebacks are for bugs only.
"""


class KiroTuiError(Exception):
    """A failure with a message fit to show a person as-is."""

    exit_code = 1


class ConfigError(KiroTuiError):
    """config.toml is unreadable or holds a bad value."""


class StoreError(KiroTuiError):
    """kiro-tui's own account store cannot be used."""


class TlsSetupError(KiroTuiError):
    """The certificate authorities to verify AWS with cannot be loaded."""


class KiroCliError(KiroTuiError):
    """kiro-cli's database cannot be read (or written back)."""


class StoreWriteError(StoreError):
    """The store would not take a write: disk full, read-only, locked. `reason` says which."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class NeedsLoginError(KiroTuiError):
    """The account's login died: only a person can fix it (log in again, or re-import)."""

    exit_code = 3
