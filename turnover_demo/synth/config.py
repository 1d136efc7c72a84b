"""Settings of the synthetic enterprise generator, with their defaults and validation.

Every identity-mess rate names its denominator (the population that is drawn for it), so
that the realized rates reported in `manifest.json` can be compared with the settings:

| setting                  | denominator                                                      |
| ------------------------ | ---------------------------------------------------------------- |
| email_case_rate          | primary LMS accounts of employments (one per employment)         |
| plus_alias_rate          | primary LMS accounts of employments                              |
| domain_alias_rate        | primary LMS accounts of employments                              |
| missing_sso_rate         | employments (HRIS rows): the HRIS carries no sso_guid            |
| contractor_rate          | employments: each one draws whether an LMS-only contractor exists |
| duplicate_account_rate   | primary LMS accounts of employments                              |
| email_reuse_rate         | hires during the period that are not rehires                     |
| rehire_rate              | hires during the period                                          |
| mbox_rate                | learner statements (voiding statements excluded)                 |
| late_rate, void_rate     | learner statements (not identity mess; not scaled by mess_scale) |

The fuzzy kinds (issue 23) defeat or mislead the exact matching rules; only a fuzzy matcher or a
steward can resolve them. They are off by default, so the default enterprise (and `make demo`) is
the same as before they existed, and they draw from random streams of their own, so switching them
on adds to an enterprise without reshuffling its other mess:

| setting                   | denominator                                                            |
| ------------------------- | ---------------------------------------------------------------------- |
| email_typo_rate           | primary LMS accounts of employments: one edit in the email's local part |
| personal_domain_rate      | primary LMS accounts of employments: a personal or unknown domain      |
| dropped_guid_rate         | primary LMS accounts whose HRIS row has an sso_guid: no externalId     |
| namesake_rate             | persons hired under a freshly drawn name: they take an employee's name |
| contractor_lookalike_rate | contractor accounts: an employee's name and local part at contractor.example |

`mess_scale` multiplies every identity-mess rate (all rows of both tables except late/void).
`PRESETS` names the combinations the identity benchmarks compare (`--preset` on the command line).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from turnover_signals.paths import INCLUDE_DIR

DEFAULT_CATALOG_FILE = INCLUDE_DIR / "course_catalog.csv"

# The identity-mess settings that `mess_scale` multiplies, in the order the manifest reports them.
IDENTITY_MESS_RATE_FIELDS = (
    "email_case_rate",
    "plus_alias_rate",
    "domain_alias_rate",
    "missing_sso_rate",
    "contractor_rate",
    "duplicate_account_rate",
    "email_reuse_rate",
    "rehire_rate",
    "mbox_rate",
)
# The fuzzy kinds, reported in the manifest's `identity_mess.fuzzy_rates` beside `rates`.
FUZZY_MESS_RATE_FIELDS = (
    "email_typo_rate",
    "personal_domain_rate",
    "dropped_guid_rate",
    "namesake_rate",
    "contractor_lookalike_rate",
)
# The fuzzy rates at mess_scale 1: at mess_scale 3 they give 6 % typos, 5 % personal or unknown domains
# and 15 % dropped GUIDs, the perturbation under which issue 23 measured the rules' recall at 0.964.
FUZZY_MESS_REFERENCE_RATES = {
    "email_typo_rate": 0.02,
    "personal_domain_rate": 0.0167,
    "dropped_guid_rate": 0.05,
    "namesake_rate": 0.02,
    "contractor_lookalike_rate": 0.10,
}
# Named settings on top of the defaults: the generator's default mess, three times that, and three
# times that plus the fuzzy kinds.
PRESETS: dict[str, dict[str, float]] = {
    "default": {},
    "mess_3x": {"mess_scale": 3.0},
    "messiest": {"mess_scale": 3.0, **FUZZY_MESS_REFERENCE_RATES},
}


class SynthConfigError(ValueError):
    """The generator settings cannot be used."""


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines a generated enterprise; equal configs give identical bytes."""

    out_dir: Path
    employees: int = 2000
    months: int = 24
    seed: int = 7
    end_date: date = date(2026, 10, 31)
    snapshot_every_days: int = 7
    signal_strength: float = 1.0
    statements_per_month: float = 4.0
    email_case_rate: float = 0.05
    plus_alias_rate: float = 0.03
    domain_alias_rate: float = 0.04
    missing_sso_rate: float = 0.04
    contractor_rate: float = 0.05
    duplicate_account_rate: float = 0.03
    email_reuse_rate: float = 0.03
    rehire_rate: float = 0.05
    mbox_rate: float = 0.10
    email_typo_rate: float = 0.0
    personal_domain_rate: float = 0.0
    dropped_guid_rate: float = 0.0
    namesake_rate: float = 0.0
    contractor_lookalike_rate: float = 0.0
    mess_scale: float = 1.0
    late_rate: float = 0.02
    void_rate: float = 0.01
    catalog_file: Path = field(default=DEFAULT_CATALOG_FILE)

    def effective_rate(self, name: str) -> float:
        """The rate actually used: identity-mess rates are multiplied by `mess_scale`."""
        value = float(getattr(self, name))
        if name in IDENTITY_MESS_RATE_FIELDS or name in FUZZY_MESS_RATE_FIELDS:
            value *= self.mess_scale
        return value

    def validate(self) -> SynthConfig:
        """Raise SynthConfigError for settings the generator cannot honour; return self."""
        if self.employees < 50:
            raise SynthConfigError("--employees must be at least 50 (ten departments need managers)")
        if not 1 <= self.months <= 240:
            raise SynthConfigError("--months must be between 1 and 240")
        if self.snapshot_every_days < 1:
            raise SynthConfigError("--snapshot-every-days must be at least 1")
        if self.signal_strength < 0:
            raise SynthConfigError("--signal-strength must be >= 0")
        if self.statements_per_month <= 0:
            raise SynthConfigError("--statements-per-month must be > 0")
        if self.mess_scale < 0:
            raise SynthConfigError("--mess-scale must be >= 0")
        for name in (*IDENTITY_MESS_RATE_FIELDS, *FUZZY_MESS_RATE_FIELDS, "late_rate", "void_rate"):
            value = self.effective_rate(name)
            if not 0.0 <= value <= 1.0:
                raise SynthConfigError(f"{name} (after --mess-scale) must be in [0, 1], got {value}")
        email_variants = sum(
            self.effective_rate(name) for name in ("email_case_rate", "plus_alias_rate", "domain_alias_rate")
        )
        if email_variants > 1.0:
            raise SynthConfigError(
                "email_case_rate + plus_alias_rate + domain_alias_rate (after --mess-scale) must not exceed "
                "1: each primary LMS account gets at most one email variant"
            )
        if self.effective_rate("email_typo_rate") + self.effective_rate("personal_domain_rate") > 1.0:
            raise SynthConfigError(
                "email_typo_rate + personal_domain_rate (after --mess-scale) must not exceed 1: each "
                "primary LMS account gets at most one of them"
            )
        return self

    @classmethod
    def from_preset(cls, preset: str, out_dir: Path, **overrides: object) -> SynthConfig:
        """The config of a named preset (see PRESETS), with `overrides` on top."""
        if preset not in PRESETS:
            raise SynthConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        return cls(out_dir=out_dir, **{**PRESETS[preset], **overrides})

    def as_manifest_arguments(self) -> dict[str, object]:
        """The settings as JSON-ready values (paths relative to nothing: only the catalog's name)."""
        arguments: dict[str, object] = {}
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            if spec.name == "out_dir":
                continue
            if isinstance(value, date):
                value = value.isoformat()
            elif isinstance(value, Path):
                value = value.name
            arguments[spec.name] = value
        return arguments
