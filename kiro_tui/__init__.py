"""kiro-tui: keep AWS Kiro / CodeWhisperer logins fresh from one terminal screen."""

__version__ = "0.1.0"
