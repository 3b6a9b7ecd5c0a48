"""A loopback emulator of AWS SSO OIDC, the Kiro social auth service and the CodeWhisperer /
Q account APIs: for the tests, the benchmarks, `kiro-tui demo`, and anyone testing their own
integration offline. See docs/emulator.md."""

from kiro_tui.emulator.server import Emulator

__all__ = ["Emulator"]
