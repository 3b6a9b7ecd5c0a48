"""Whether this interpreter lets the TUI take its full garbage collections over (tui/collector.py):
CPython's generational collector keeps an oldest-generation threshold; an incremental one does not."""

from __future__ import annotations

from kiro_tui.tui.collector import Collector


def collector_takes_over() -> bool:
    probe = Collector()
    probe.take_over()
    taken = probe.holding
    probe.give_back()
    return taken


TAKES_OVER = collector_takes_over()
