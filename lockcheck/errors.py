"""The one error type the CLI turns into `lockcheck: error: ...` and exit 2.

Every expected failure (bad input, bad pack, unknown rule) is raised as a
`LockcheckError` so that no caller needs to know which layer failed.
"""

from __future__ import annotations


class LockcheckError(Exception):
    """An expected failure: reported as one line on stderr, exit status 2."""


class InputError(LockcheckError):
    """A file, patch or email that cannot be read as what it claims to be."""


class PackError(LockcheckError):
    """A rule pack that is missing, malformed or names unknown things."""


class RuleError(LockcheckError):
    """An unknown rule id or a plugin that failed to load."""
