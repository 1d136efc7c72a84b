"""Identity mess: the ways an LMS identity drifts from the HRIS record, and the ledger that counts them.

Each kind is drawn at a configured rate over a named denominator (see `config.py`); the ledger
counts both, so `manifest.json` can report realized rates next to the settings.
"""

from __future__ import annotations

from collections.abc import Container
from random import Random

from turnover_demo.synth.config import SynthConfig
from turnover_demo.synth.names import ascii_email_part

CORPORATE_DOMAIN = "northwind.example"
CORPORATE_ALIAS_DOMAIN = "nw-corp.example"
CONTRACTOR_DOMAIN = "contractor.example"
PLUS_ALIAS_TAGS = ("lms", "learning", "training")

# Mess kinds as written to ground_truth/lms_accounts.csv `mess_kinds`.
EMAIL_CASE = "email_case"
PLUS_ALIAS = "plus_alias"
DOMAIN_ALIAS = "domain_alias"
MISSING_SSO_GUID = "missing_sso_guid"
CONTRACTOR = "contractor"
DUPLICATE_ACCOUNT = "duplicate_account"
REASSIGNED_EMAIL = "reassigned_email"  # the new hire's account: the address belonged to a leaver
EMAIL_LATER_REASSIGNED = "email_later_reassigned"  # the leaver's account still carrying that address
REHIRE = "rehire"  # an account of a rehired person's new employment
USERNAME_RELEASED = (
    "username_released"  # an inactive account renamed so a new account could take its userName
)
USERNAME_SUFFIXED = "username_suffixed"  # a new account whose userName got a suffix because it was taken
# The fuzzy kinds (issue 23): exact rules cannot resolve them, or a fuzzy matcher is easily fooled by them.
EMAIL_TYPO = "email_typo"  # one edit (a letter inserted, deleted or replaced) in the local part
PERSONAL_DOMAIN = "personal_domain"  # a personal or unknown domain instead of the corporate address
DROPPED_GUID = "dropped_guid"  # no externalId although the HRIS has the person's sso_guid
NAMESAKE = "namesake"  # the owner was given the first and last name of an earlier employee
CONTRACTOR_LOOKALIKE = "contractor_lookalike"  # a contractor with an employee's name and local part

# Personal mail providers and an unknown domain (an acquired company's, never configured as corporate).
PERSONAL_EMAIL_DOMAINS = ("mail.example", "webmail.example", "inbox.example", "fabrikam.example")
# Letters next to each other on a QWERTY keyboard: most one-letter typos hit a neighbour.
_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
KEYBOARD_NEIGHBOURS = {
    row[index]: row[max(0, index - 1) : index] + row[index + 1 : index + 2]
    for row in _KEYBOARD_ROWS
    for index in range(len(row))
}

# Manifest entries: kind -> (config setting, what the rate is counted over).
RATED_KINDS = {
    EMAIL_CASE: ("email_case_rate", "primary LMS accounts of employments"),
    PLUS_ALIAS: ("plus_alias_rate", "primary LMS accounts of employments"),
    DOMAIN_ALIAS: ("domain_alias_rate", "primary LMS accounts of employments"),
    MISSING_SSO_GUID: ("missing_sso_rate", "employments (HRIS rows)"),
    CONTRACTOR: ("contractor_rate", "employments (one draw each for an LMS-only contractor account)"),
    DUPLICATE_ACCOUNT: ("duplicate_account_rate", "primary LMS accounts of employments"),
    REASSIGNED_EMAIL: ("email_reuse_rate", "hires during the period that are not rehires"),
    REHIRE: ("rehire_rate", "hires during the period"),
    "mbox_actor": ("mbox_rate", "learner statements in statements.jsonl (voiding statements excluded)"),
    "late_stored": ("late_rate", "learner statements in statements.jsonl (voiding statements excluded)"),
    "voided": ("void_rate", "learner statements in statements.jsonl (voiding statements excluded)"),
}
# The fuzzy kinds, reported apart (`fuzzy_rates`) so the manifest's `rates` keep their meaning.
FUZZY_RATED_KINDS = {
    EMAIL_TYPO: ("email_typo_rate", "primary LMS accounts of employments"),
    PERSONAL_DOMAIN: ("personal_domain_rate", "primary LMS accounts of employments"),
    DROPPED_GUID: ("dropped_guid_rate", "primary LMS accounts whose HRIS employment has an sso_guid"),
    NAMESAKE: ("namesake_rate", "persons hired under a freshly drawn name"),
    CONTRACTOR_LOOKALIKE: ("contractor_lookalike_rate", "contractor accounts"),
}


def email_case_variant(email: str, rng: Random) -> str:
    """The same address differing only by letter case, as an LMS admin or an import might type it."""
    local, _, domain = email.partition("@")
    style = rng.randrange(3)
    if style == 0:
        variant = ".".join(part[:1].upper() + part[1:] for part in local.split(".")) + "@" + domain
    elif style == 1:
        variant = email.upper()
    else:
        variant = local + "@" + ".".join(part.capitalize() for part in domain.split("."))
    if variant == email:  # e.g. a local part of digits only: fall back to an upper-case domain
        variant = local + "@" + domain.upper()
    return variant


def plus_alias(email: str, rng: Random) -> str:
    """`jane.doe+lms@northwind.example`: sub-addressing some users type into the LMS."""
    local, _, domain = email.partition("@")
    return f"{local}+{rng.choice(PLUS_ALIAS_TAGS)}@{domain}"


def domain_alias(email: str) -> str:
    """The same local part at the second corporate domain (`nw-corp.example`)."""
    local, _, domain = email.partition("@")
    if domain.lower() == CORPORATE_DOMAIN:
        return f"{local}@{CORPORATE_ALIAS_DOMAIN}"
    return email


def corporate_canonical(email: str) -> str:
    """The address as the corporate mail server delivers it: lower case, no +tag, the alias domain mapped."""
    local, _, domain = email.lower().partition("@")
    if domain == CORPORATE_ALIAS_DOMAIN:
        domain = CORPORATE_DOMAIN
    return f"{local.partition('+')[0]}@{domain}"


def email_typo(email: str, rng: Random, taken: Container[str] = ()) -> str:
    """The address with one edit in the letters of its local part (before any +tag), as a person
    typing it might make: a neighbouring key instead of the right one, a letter doubled or dropped.

    The result never normalizes to an address in `taken` (another employee's: a typo landing on a
    real address is a different problem, a wrong exact match) and never equals `email` in any case.
    """
    local, _, domain = email.partition("@")
    base, plus, tag = local.partition("+")
    letters = [index for index, char in enumerate(base) if char.isascii() and char.isalpha()]
    for _ in range(20 if letters else 0):
        index = rng.choice(letters)
        char = base[index]
        edit = rng.randrange(3) if len(letters) > 4 else rng.randrange(2)
        if edit == 0:
            replacement = rng.choice(KEYBOARD_NEIGHBOURS[char.lower()])
            edited = (
                base[:index] + (replacement.upper() if char.isupper() else replacement) + base[index + 1 :]
            )
        elif edit == 1:
            edited = base[:index] + char + base[index:]
        else:
            edited = base[:index] + base[index + 1 :]
        candidate = f"{edited}{plus}{tag}@{domain}"
        if candidate.lower() != email.lower() and corporate_canonical(candidate) not in taken:
            return candidate
    return email  # no safe edit found (no letters, or every edit lands on an issued address): leave it


def personal_address(first_name: str, last_name: str, rng: Random) -> str:
    """A personal or unknown-domain address a person might register with: `jane.doe`, `janedoe`,
    `jdoe` (sometimes with two digits) at a mail provider or an unconfigured domain."""
    first, last = ascii_email_part(first_name), ascii_email_part(last_name)
    style = rng.randrange(3)
    local = f"{first}.{last}" if style == 0 else f"{first}{last}" if style == 1 else f"{first[0]}{last}"
    if rng.random() < 0.4:
        local += f"{rng.randrange(10, 100)}"
    return f"{local}@{rng.choice(PERSONAL_EMAIL_DOMAINS)}"


class DeferredDraws:
    """Bernoulli draws that may have to wait for a candidate (a leaver to rehire, an address to reuse).

    A success drawn when no candidate exists is owed and paid at the next opportunity, so the
    realized rate follows the setting even when the candidate pool starts empty.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.owed = 0

    def wants(self, rng: Random) -> bool:
        """Draw for one opportunity; True when a success (new or owed) should be applied now."""
        if rng.random() < self.rate:
            self.owed += 1
        return self.owed > 0

    def paid(self) -> None:
        """A wanted success was applied."""
        self.owed -= 1


class MessLedger:
    """Counts of each mess kind and of its denominator, for the manifest."""

    def __init__(self, config: SynthConfig) -> None:
        self.config = config
        self.counts: dict[str, int] = {kind: 0 for kind in (*RATED_KINDS, *FUZZY_RATED_KINDS)}
        self.denominators: dict[str, int] = {kind: 0 for kind in (*RATED_KINDS, *FUZZY_RATED_KINDS)}
        self.other_counts: dict[str, int] = {}

    def record(self, kind: str, happened: bool, opportunities: int = 1) -> None:
        """One (or more) draws for a rated kind, and whether it happened."""
        self.denominators[kind] += opportunities
        if happened:
            self.counts[kind] += 1

    def record_totals(self, kind: str, count: int, denominator: int) -> None:
        """Counts tallied elsewhere in bulk (statement-level kinds are counted as lines are written)."""
        self.counts[kind] += count
        self.denominators[kind] += denominator

    def add(self, kind: str, count: int = 1) -> None:
        """Count an unrated event (e.g. a released userName)."""
        self.other_counts[kind] = self.other_counts.get(kind, 0) + count

    def _rated(self, kinds: dict[str, tuple[str, str]]) -> dict[str, object]:
        rated: dict[str, object] = {}
        for kind, (setting, denominator_name) in kinds.items():
            denominator = self.denominators[kind]
            rated[kind] = {
                "setting": setting,
                "configured_rate": round(self.config.effective_rate(setting), 6),
                "denominator": denominator_name,
                "denominator_count": denominator,
                "count": self.counts[kind],
                "realized_rate": round(self.counts[kind] / denominator, 6) if denominator else None,
            }
        return rated

    def report(self) -> dict[str, object]:
        """The manifest's `identity_mess` section."""
        return {
            "rates": self._rated(RATED_KINDS),
            "fuzzy_rates": self._rated(FUZZY_RATED_KINDS),
            "other_counts": dict(sorted(self.other_counts.items())),
        }
