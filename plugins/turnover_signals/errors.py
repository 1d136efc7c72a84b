"""Errors the bundle raises: each names what failed, where, why, and the next step."""

from __future__ import annotations

RUNBOOK = "README.md#runbook"


class TurnoverSignalsError(RuntimeError):
    """A failure an on-call engineer can act on.

    The message reads: `<subject>: <problem>. Next step: <next_step> (runbook: <section>)`.
    """

    def __init__(self, subject: str, problem: str, next_step: str, runbook_section: str = ""):
        self.subject = subject
        self.problem = problem
        self.next_step = next_step
        self.runbook_section = runbook_section
        anchor = f"{RUNBOOK}-{runbook_section}" if runbook_section else RUNBOOK
        super().__init__(f"{subject}: {problem}. Next step: {next_step} (runbook: {anchor})")


class SourceUnavailableError(TurnoverSignalsError):
    """A source server could not be reached or dropped the transfer; retrying may help."""


class SourceRefusedError(TurnoverSignalsError):
    """A source was reached but must not be trusted or read (host key mismatch, auth); retrying will not help."""


class BadInputError(TurnoverSignalsError):
    """The input itself is wrong: it is quarantined and must be corrected at the source."""


class FreshnessError(TurnoverSignalsError):
    """Published data is older than its service level objective."""


class StorageNotSharedError(BadInputError):
    """Tasks may run on several hosts and no shared object store (`storage.base_url`) is configured."""


class StorageVerificationError(TurnoverSignalsError):
    """An object read back differs from what was written; nothing it was to preserve was deleted."""
