"""lockcheck: a patch-review assistant for Linux kernel locking."""

__version__ = "0.1.0"
