"""`python -m kiro_tui` behaves exactly like the `kiro-tui` command."""

from kiro_tui.cli import main

raise SystemExit(main())
