"""The exceptions that mean a bug in l4kit's core.

The listener catches every exception from a connection, resets it and reports
``DropReason.INTERNAL_ERROR`` (see :mod:`l4kit.core.connection`); these name the
cases the core checks for itself. They live apart from the state machine so that
it can be compiled by mypyc (``setup.py``), which cannot compile a subclass of
``RuntimeError``; :mod:`l4kit.core.connection` re-exports them.
"""

from __future__ import annotations


class InvalidTransitionError(RuntimeError):
    """A state change that :data:`~l4kit.core.connection.TRANSITIONS` does not allow: a bug in l4kit."""


class MissingCaseError(RuntimeError):
    """A processing step reached a state it has no rule for: a bug in l4kit."""
