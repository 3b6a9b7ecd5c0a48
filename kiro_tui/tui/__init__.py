"""The terminal UI: presents the core (store, engine, login flow); holds no business logic."""
