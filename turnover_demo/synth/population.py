"""The HR world: people, their employments, the org chart, and the events that change them.

The simulation runs day by day. On the first day of each month every active worker draws the
month's events (voluntary resignation intent, dismissal, other exits, promotion, transfer, a
reorganisation's manager change, a market adjustment) and they are put in a calendar; the annual
performance review (1 March) and merit cycle (1 April) run on their dates; every exit schedules a
backfill hire. Rehires and reassigned email addresses come in through hires.

The planted signal: each person has a `latent_risk`. The voluntary hazard grows with it and with
its interactions with HR push factors (a pay freeze, a recent manager change), the tenure curve
and the job level. A voluntary exit follows the resignation intent by 90-180 days; the LMS side
reads `intent_day`/`voluntary_exit_day` to let learning engagement fade over that window.
Involuntary and other exits never look at `latent_risk`.
"""

from __future__ import annotations

import math
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from itertools import accumulate
from random import Random
from typing import TYPE_CHECKING

from turnover_demo.synth.config import SynthConfig
from turnover_demo.synth.hris_files import SNAPSHOT_LOOKBACK_DAYS, HrisExportWriter, employee_csv_line
from turnover_demo.synth.identity_mess import (
    CORPORATE_DOMAIN,
    MISSING_SSO_GUID,
    NAMESAKE,
    REASSIGNED_EMAIL,
    REHIRE,
    DeferredDraws,
    MessLedger,
)
from turnover_demo.synth.names import draw_name, email_local_part

if TYPE_CHECKING:
    from turnover_demo.synth.lms_events import LearningSimulator


@dataclass(frozen=True)
class Department:
    """A department: its share of headcount, individual-contributor roles and pay multiplier."""

    name: str
    weight: float
    roles: tuple[str, ...]
    pay_multiplier: float


@dataclass(frozen=True)
class Location:
    """An office: its currency, pay level relative to US dollars, and share of headcount."""

    name: str
    currency: str
    pay_factor: float
    weight: float


DEPARTMENTS = (
    Department(
        "Engineering",
        0.25,
        ("Software Engineer", "QA Engineer", "Site Reliability Engineer", "Data Engineer"),
        1.15,
    ),
    Department(
        "Sales", 0.17, ("Account Executive", "Sales Development Representative", "Sales Engineer"), 1.0
    ),
    Department(
        "Customer Success",
        0.12,
        ("Customer Success Manager", "Support Specialist", "Implementation Consultant"),
        0.9,
    ),
    Department(
        "Operations", 0.11, ("Operations Analyst", "Logistics Coordinator", "Procurement Specialist"), 0.9
    ),
    Department(
        "Marketing", 0.08, ("Marketing Specialist", "Content Strategist", "Demand Generation Analyst"), 1.0
    ),
    Department("Product", 0.07, ("Product Manager", "Product Designer", "UX Researcher"), 1.12),
    Department("Finance", 0.06, ("Financial Analyst", "Accountant", "Payroll Specialist"), 1.05),
    Department("IT", 0.06, ("IT Support Engineer", "Systems Administrator", "Security Analyst"), 1.0),
    Department("People", 0.05, ("HR Business Partner", "Recruiter", "People Operations Specialist"), 0.95),
    Department("Legal", 0.03, ("Legal Counsel", "Paralegal", "Compliance Analyst"), 1.2),
)
DEPARTMENT_BY_NAME = {department.name: department for department in DEPARTMENTS}
EXECUTIVE_DEPARTMENT = "Executive"

LOCATIONS = (
    Location("New York", "USD", 1.15, 0.18),
    Location("Austin", "USD", 1.0, 0.17),
    Location("San Francisco", "USD", 1.25, 0.10),
    Location("London", "GBP", 0.62, 0.13),
    Location("Manchester", "GBP", 0.50, 0.06),
    Location("Berlin", "EUR", 0.70, 0.12),
    Location("Amsterdam", "EUR", 0.74, 0.08),
    Location("Dublin", "EUR", 0.76, 0.09),
    Location("Madrid", "EUR", 0.55, 0.07),
)
LOCATION_BY_NAME = {location.name: location for location in LOCATIONS}

LEVEL_BASE_SALARY_USD = {1: 52_000, 2: 66_000, 3: 84_000, 4: 108_000, 5: 135_000, 6: 180_000, 7: 320_000}
INDIVIDUAL_CONTRIBUTOR_LEVELS = (1, 2, 3, 4)
INDIVIDUAL_CONTRIBUTOR_LEVEL_WEIGHTS = (0.20, 0.32, 0.28, 0.20)
MANAGER_LEVEL, HEAD_LEVEL, CEO_LEVEL = 5, 6, 7
REPORTS_PER_MANAGER = 10
# Mean tenure (years) of the starting population by level: seniority comes with time served.
MEAN_TENURE_YEARS_BY_LEVEL = {1: 1.5, 2: 3.0, 3: 4.5, 4: 6.0, 5: 7.0, 6: 8.0, 7: 11.0}
FTE_CHOICES = (("1.0", 1.0), ("0.8", 0.8), ("0.5", 0.5))
FTE_CUMULATIVE = (0.88, 0.95, 1.0)
RATING_CUMULATIVE = list(accumulate((0.03, 0.10, 0.52, 0.27, 0.08)))

VOLUNTARY_REASONS = (
    ("Resignation - better opportunity", 0.38),
    ("Resignation - compensation", 0.18),
    ("Resignation - career change", 0.12),
    ("Resignation - relocation", 0.10),
    ("Resignation - personal reasons", 0.12),
    ("Resignation - manager relationship", 0.10),
)
INVOLUNTARY_REASONS = (
    ("Dismissal - performance", 0.45),
    ("Dismissal - misconduct", 0.15),
    ("Layoff", 0.25),
    ("Position eliminated", 0.15),
)

# Monthly hazards, tuned so a year sees about 11% voluntary, 3% involuntary and 1% other exits.
VOLUNTARY_BASE_HAZARD = 0.0068
INVOLUNTARY_BASE_HAZARD = 0.0018
INVOLUNTARY_RATING_MULTIPLIER = {1: 6.0, 2: 3.0, 3: 1.0, 4: 0.6, 5: 0.4, None: 1.3}
RETIREMENT_HAZARD = 0.003  # workers with 15+ years of service
END_OF_CONTRACT_HAZARD = 0.006  # half-time workers, often on fixed-term contracts
OTHER_EXIT_HAZARD = 0.0003
PROMOTION_BASE_HAZARD = 0.012
PROMOTION_RATING_MULTIPLIER = {1: 0.0, 2: 0.2, 3: 0.8, 4: 1.8, 5: 2.6, None: 0.4}
TRANSFER_HAZARD = 0.004
REORG_MANAGER_CHANGE_HAZARD = 0.008
MARKET_ADJUSTMENT_HAZARD = 0.002
GROWTH_HIRES_PER_HEAD_PER_MONTH = 0.002
# The resignation intent precedes the exit by this many days: the window in which engagement fades.
INTENT_LEAD_DAYS = (90, 180)
REHIRE_WAIT_DAYS = 60  # a leaver can come back after this long
EMAIL_REUSE_WAIT_DAYS = 21  # IT recycles a mailbox no sooner than this after the leaver's exit
REHIRE_KEEPS_SSO_GUID = 0.9  # the identity provider usually revives the old identity

AVERAGE_MONTH_DAYS = 30.44

# Calendar event priorities within a day: exits first (they free emails and positions), then hires.
EXIT, HIRE, PROMOTION, TRANSFER, MANAGER_CHANGE, MARKET_ADJUSTMENT = range(6)


class Person:
    """A human being; may hold several employments (a rehire) under different employee ids."""

    __slots__ = (
        "person_id",
        "first_name",
        "last_name",
        "sso_guid",
        "latent_risk",
        "learning_engagement",
        "employments",
        "is_namesake",
    )

    def __init__(
        self, person_id: str, first_name: str, last_name: str, sso_guid: str, latent_risk: float
    ) -> None:
        self.person_id = person_id
        self.first_name = first_name
        self.last_name = last_name
        self.sso_guid = sso_guid
        self.latent_risk = latent_risk
        self.learning_engagement: float | None = None  # drawn by the LMS side, independent of risk
        self.employments: list[Employment] = []
        self.is_namesake = False  # given an earlier employee's name by the namesake_rate draw

    def is_employed(self) -> bool:
        """Whether the person's latest employment is still running."""
        return bool(self.employments) and self.employments[-1].termination_day is None


class Employment:
    """One employment (one employee_id) and its current HR record; days are date ordinals."""

    __slots__ = (
        "employee_id",
        "person",
        "sso_guid",
        "work_email",
        "hire_day",
        "termination_day",
        "termination_type",
        "termination_reason",
        "job_role",
        "job_level",
        "department",
        "location",
        "manager_id",
        "salary_cents",
        "currency",
        "fte",
        "performance_rating",
        "reports",
        "intent_day",
        "voluntary_exit_day",
        "known_exit_day",
        "last_pay_freeze_day",
        "last_manager_change_day",
        "last_promotion_day",
        "is_rehire",
        "email_reused_from",
        "email_later_reassigned",
        "lms_accounts",
        "_snapshot_line",
    )

    def __init__(self, employee_id: str, person: Person, hire_day: int) -> None:
        self.employee_id = employee_id
        self.person = person
        self.hire_day = hire_day
        self.sso_guid = ""
        self.work_email = ""
        self.termination_day: int | None = None
        self.termination_type = ""
        self.termination_reason = ""
        self.job_role = ""
        self.job_level = 1
        self.department = ""
        self.location = ""
        self.manager_id = ""
        self.salary_cents = 0
        self.currency = ""
        self.fte = "1.0"
        self.performance_rating: int | None = None
        self.reports: dict[str, None] | None = None  # ordered set of direct reports' ids; managers only
        self.intent_day: int | None = None  # the day the person decided to resign
        self.voluntary_exit_day: int | None = None  # may lie beyond the simulated period
        self.known_exit_day: int | None = None  # the earliest planned exit inside the period
        self.last_pay_freeze_day: int | None = None
        self.last_manager_change_day: int | None = None
        self.last_promotion_day: int | None = None
        self.is_rehire = False
        self.email_reused_from: Employment | None = None
        self.email_later_reassigned = False
        self.lms_accounts: list = []
        self._snapshot_line: bytes | None = None

    def touch(self) -> None:
        """The HR record changed: the cached snapshot row must be rebuilt."""
        self._snapshot_line = None

    def snapshot_line(self) -> bytes:
        """The encoded snapshot row; rebuilt only after a change, since most rows repeat week after week."""
        line = self._snapshot_line
        if line is None:
            line = self._snapshot_line = employee_csv_line(self)
        return line


@dataclass
class Position:
    """An opening to fill: a backfill (with the reports parked on an interim manager) or growth."""

    department: str
    job_level: int
    job_role: str
    location: str
    parked_report_ids: tuple[str, ...] = ()
    interim_manager_id: str = ""


def _weighted_index(rng: Random, cumulative: list[float] | tuple[float, ...]) -> int:
    """Index drawn with the given cumulative weights."""
    target = rng.random() * cumulative[-1]
    for index, bound in enumerate(cumulative):
        if target < bound:
            return index
    return len(cumulative) - 1


def _weighted_choice(rng: Random, options: tuple[tuple[str, float], ...]) -> str:
    return options[_weighted_index(rng, list(accumulate(weight for _, weight in options)))][0]


def _year_start(day: int) -> int:
    return date(date.fromordinal(day).year, 1, 1).toordinal()


class Company:
    """Northwind's HR world over the simulated period; writes HRIS files and tells the LMS side."""

    def __init__(
        self,
        config: SynthConfig,
        start_day: int,
        end_day: int,
        rng: Random,
        mess_rng: Random,
        ledger: MessLedger,
        hris: HrisExportWriter,
        lms: LearningSimulator,
        fuzzy_mess_rng: Random,
    ) -> None:
        self.config = config
        self.start_day = start_day
        self.end_day = end_day
        self.rng = rng
        self.mess_rng = mess_rng
        self.fuzzy_mess_rng = fuzzy_mess_rng
        self._namesake_rate = config.effective_rate("namesake_rate")
        self.ledger = ledger
        self.hris = hris
        self.lms = lms
        self.persons: list[Person] = []
        self.employments: list[Employment] = []  # in employee_id order
        self.by_id: dict[str, Employment] = {}
        self.active: dict[str, Employment] = {}  # employee_id order, which is hire order
        self.in_snapshot: dict[str, Employment] = {}  # active plus recently terminated
        self.managers_by_department: dict[str, list[str]] = {
            department.name: [] for department in DEPARTMENTS
        }
        self.head_by_department: dict[str, str] = {}
        self.ceo_id = ""
        self.active_emails: set[str] = set()  # membership only: never iterated (hash order)
        self.used_emails: set[str] = set()
        self._next_email_suffix: dict[str, int] = {}
        self._calendar: dict[int, list[tuple]] = {}
        self._event_sequence = 0
        self._rehire_waiting: deque[tuple[int, Person]] = deque()
        self._rehire_eligible: list[Person] = []
        self._email_reuse_waiting: deque[tuple[int, Employment]] = deque()
        self._email_reuse_eligible: list[Employment] = []
        self._rehire_draws = DeferredDraws(config.effective_rate("rehire_rate"))
        self._email_reuse_draws = DeferredDraws(config.effective_rate("email_reuse_rate"))
        self._missing_sso_rate = config.effective_rate("missing_sso_rate")
        self.active_employee_days = 0
        self.stats: dict[str, int] = {
            "hires": 0,
            "rehires": 0,
            "reassigned_email_hires": 0,
            "promotions": 0,
            "transfers": 0,
            "manager_changes": 0,
            "merit_increases": 0,
            "pay_freezes": 0,
            "market_adjustments": 0,
            "terminations_voluntary": 0,
            "terminations_involuntary": 0,
            "terminations_other": 0,
        }
        self._department_cumulative = list(accumulate(department.weight for department in DEPARTMENTS))
        self._location_cumulative = list(accumulate(location.weight for location in LOCATIONS))

    # ----- identities -------------------------------------------------------------------------

    def _new_guid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _new_person(self, first_name: str, last_name: str) -> Person:
        # Beta(2, 4): most people are settled, a tail is restless.
        person = Person(
            f"P{len(self.persons) + 1:07d}",
            first_name,
            last_name,
            self._new_guid(),
            self.rng.betavariate(2.0, 4.0),
        )
        self.persons.append(person)
        return person

    def _new_person_with_fresh_name(self) -> Person:
        """A newcomer under a drawn name, or (namesake_rate) under the name of an earlier employee."""
        first_name, last_name = draw_name(self.rng)  # drawn either way: the HR stream must not depend on it
        is_namesake = bool(self.employments) and self.fuzzy_mess_rng.random() < self._namesake_rate
        self.ledger.record(NAMESAKE, is_namesake)
        if is_namesake:
            namesake_of = self.employments[self.fuzzy_mess_rng.randrange(len(self.employments))].person
            first_name, last_name = namesake_of.first_name, namesake_of.last_name
        person = self._new_person(first_name, last_name)
        person.is_namesake = is_namesake
        return person

    def _allocate_email(self, person: Person) -> str:
        """`first.last@northwind.example`, with digits appended while the address was ever used."""
        local = email_local_part(person.first_name, person.last_name)
        suffix = self._next_email_suffix.get(local, 1)
        while True:
            candidate = (
                f"{local}@{CORPORATE_DOMAIN}" if suffix == 1 else f"{local}{suffix}@{CORPORATE_DOMAIN}"
            )
            suffix += 1
            if candidate not in self.used_emails:
                self._next_email_suffix[local] = suffix
                return candidate

    def _draw_hris_sso_guid(self, guid: str) -> str:
        missing = self.mess_rng.random() < self._missing_sso_rate
        self.ledger.record(MISSING_SSO_GUID, missing)
        return "" if missing else guid

    # ----- org chart ----------------------------------------------------------------------------

    def _register(self, employment: Employment) -> None:
        self.employments.append(employment)
        self.by_id[employment.employee_id] = employment
        self.active[employment.employee_id] = employment
        self.in_snapshot[employment.employee_id] = employment
        employment.person.employments.append(employment)
        self.active_emails.add(employment.work_email)
        self.used_emails.add(employment.work_email)
        if employment.job_level == MANAGER_LEVEL:
            self.managers_by_department[employment.department].append(employment.employee_id)
        elif employment.job_level == HEAD_LEVEL:
            self.head_by_department[employment.department] = employment.employee_id

    def _choose_manager(self, department: str, level: int, exclude_id: str = "") -> str:
        """A manager for a worker: a level-5 manager of the department with few reports, else the head."""
        if level >= CEO_LEVEL:
            return ""
        if level == HEAD_LEVEL:
            return self.ceo_id
        head_id = self.head_by_department.get(department, self.ceo_id)
        if level == MANAGER_LEVEL:
            return head_id
        candidates = [
            manager_id for manager_id in self.managers_by_department[department] if manager_id != exclude_id
        ]
        if not candidates:
            return head_id
        first = candidates[self.rng.randrange(len(candidates))]
        second = candidates[self.rng.randrange(len(candidates))]
        # The smaller of two random teams: keeps spans even without a global search.
        return (
            first if len(self.by_id[first].reports or ()) <= len(self.by_id[second].reports or ()) else second
        )

    def _set_manager(self, employment: Employment, manager_id: str, day: int | None) -> None:
        previous = self.by_id.get(employment.manager_id)
        if previous is not None and previous.reports:
            previous.reports.pop(employment.employee_id, None)
        employment.manager_id = manager_id
        if manager_id:
            manager = self.by_id[manager_id]
            if manager.reports is None:
                manager.reports = {}
            manager.reports[employment.employee_id] = None
        if day is not None:
            employment.last_manager_change_day = day
            self.stats["manager_changes"] += 1
        employment.touch()

    # ----- pay ----------------------------------------------------------------------------------

    def _market_salary_cents(self, level: int, department: str, location: str, fte: float) -> int:
        multiplier = (
            DEPARTMENT_BY_NAME[department].pay_multiplier if department in DEPARTMENT_BY_NAME else 1.0
        )
        annual = (
            LEVEL_BASE_SALARY_USD[level]
            * multiplier
            * LOCATION_BY_NAME[location].pay_factor
            * fte
            * self.rng.lognormvariate(0.0, 0.08)
        )
        return int(round(annual / 100.0)) * 100 * 100  # offers are made in round hundreds

    def _change_pay(self, employment: Employment, day: int, change_type: str, new_cents: int) -> None:
        previous = employment.salary_cents
        employment.salary_cents = new_cents
        employment.touch()
        self.hris.write_pay_change(
            employment.employee_id, day, change_type, previous, new_cents, employment.currency
        )

    def _raise_cents(self, cents: int, low: float, high: float) -> int:
        return int(round(cents * (1.0 + self.rng.uniform(low, high))))

    def _draw_rating(self) -> int:
        return _weighted_index(self.rng, RATING_CUMULATIVE) + 1

    # ----- calendar -----------------------------------------------------------------------------

    def _schedule(
        self, day: int, priority: int, handler: Callable, subject: object, payload: object = None
    ) -> None:
        if day > self.end_day:
            return
        self._event_sequence += 1
        self._calendar.setdefault(day, []).append((priority, self._event_sequence, handler, subject, payload))

    def _plan_exit(self, employment: Employment, day: int, termination_type: str, reason: str) -> None:
        if day > self.end_day:
            return
        if employment.known_exit_day is None or day < employment.known_exit_day:
            employment.known_exit_day = day
        self._schedule(day, EXIT, self._handle_exit, employment, (termination_type, reason))

    # ----- the starting population --------------------------------------------------------------

    def _department_sizes(self, total: int) -> list[int]:
        """Headcount per department by weight, largest remainder first, at least one each."""
        weight_sum = sum(department.weight for department in DEPARTMENTS)
        exact = [total * department.weight / weight_sum for department in DEPARTMENTS]
        sizes = [max(1, int(value)) for value in exact]
        order = sorted(range(len(DEPARTMENTS)), key=lambda index: (int(exact[index]) - exact[index], index))
        index = 0
        while sum(sizes) < total:
            sizes[order[index % len(order)]] += 1
            index += 1
        return sizes

    def build_initial_population(self) -> None:
        """Hire the workforce present on the first day, with varied tenure, pay history and ratings."""
        openings: list[tuple[str, int, str]] = [(EXECUTIVE_DEPARTMENT, CEO_LEVEL, "Chief Executive Officer")]
        for department, size in zip(
            DEPARTMENTS, self._department_sizes(self.config.employees - 1), strict=True
        ):
            openings.append((department.name, HEAD_LEVEL, f"Head of {department.name}"))
            managers = max(1, round((size - 1) / (REPORTS_PER_MANAGER + 1))) if size >= 3 else 0
            openings.extend(
                (department.name, MANAGER_LEVEL, f"{department.name} Manager") for _ in range(managers)
            )
            for _ in range(size - 1 - managers):
                level = INDIVIDUAL_CONTRIBUTOR_LEVELS[
                    _weighted_index(self.rng, list(accumulate(INDIVIDUAL_CONTRIBUTOR_LEVEL_WEIGHTS)))
                ]
                openings.append((department.name, level, self.rng.choice(department.roles)))

        dated = []
        for order, (department, level, role) in enumerate(openings):
            mean_days = MEAN_TENURE_YEARS_BY_LEVEL[level] * 365.25
            tenure_days = min(35 * 365, 14 + int(self.rng.expovariate(1.0 / mean_days)))
            dated.append((self.start_day - tenure_days, order, department, level, role))
        dated.sort()  # employee ids follow hire order, as an HRIS assigns them

        last_review = self._review_day_on_or_before(self.start_day - 1)
        for hire_day, _, department, level, role in dated:
            person = self._new_person_with_fresh_name()
            employment = Employment(f"E{len(self.employments) + 1:06d}", person, hire_day)
            employment.sso_guid = self._draw_hris_sso_guid(person.sso_guid)
            employment.work_email = self._allocate_email(person)
            employment.department, employment.job_level, employment.job_role = department, level, role
            location = LOCATIONS[_weighted_index(self.rng, self._location_cumulative)]
            employment.location, employment.currency = location.name, location.currency
            fte_label, fte = (
                FTE_CHOICES[_weighted_index(self.rng, FTE_CUMULATIVE)] if level <= 4 else FTE_CHOICES[0]
            )
            employment.fte = fte_label
            employment.salary_cents = self._market_salary_cents(level, department, location.name, fte)
            if last_review is not None and hire_day < _year_start(last_review):
                employment.performance_rating = self._draw_rating()
            if level == CEO_LEVEL:
                self.ceo_id = employment.employee_id
            self._register(employment)
            self._write_pay_history(employment)

        for employment in self.employments:
            if employment.job_level == HEAD_LEVEL:
                self._set_manager(employment, self.ceo_id, None)
        for employment in self.employments:
            if employment.job_level < HEAD_LEVEL:
                self._set_manager(
                    employment, self._choose_manager(employment.department, employment.job_level), None
                )

        for employment in self.employments:
            if employment.employee_id != self.ceo_id:
                self._seed_resignation_pipeline(employment)
            self.lms.employment_started(employment, initial=True)

    def _review_day_on_or_before(self, day: int) -> int | None:
        current = date.fromordinal(day)
        review = date(current.year, 3, 1)
        if review > current:
            review = date(current.year - 1, 3, 1)
        return review.toordinal()

    def _write_pay_history(self, employment: Employment) -> None:
        """The hire record and each April merit record before the period, ending at today's salary."""
        history: list[tuple[int, str, int, int]] = []
        current = employment.salary_cents
        year = date.fromordinal(self.start_day - 1).year
        while True:
            cycle_day = date(year, 4, 1).toordinal()
            year -= 1
            if cycle_day >= self.start_day:
                continue
            if cycle_day <= employment.hire_day or employment.hire_day >= _year_start(cycle_day):
                break
            if self.rng.random() < 0.08:
                history.append((cycle_day, "pay_freeze", current, current))
                if employment.last_pay_freeze_day is None:
                    employment.last_pay_freeze_day = cycle_day
                continue
            previous = int(round(current / (1.0 + self.rng.uniform(0.02, 0.045))))
            history.append((cycle_day, "merit_increase", previous, current))
            current = previous
        self.hris.write_pay_change(
            employment.employee_id, employment.hire_day, "hire", None, current, employment.currency
        )
        for cycle_day, change_type, previous, new in reversed(history):
            self.hris.write_pay_change(
                employment.employee_id, cycle_day, change_type, previous, new, employment.currency
            )

    def _seed_resignation_pipeline(self, employment: Employment) -> None:
        """Some people had decided to leave before the period began: their exits fall in its first months."""
        lead_mean = sum(INTENT_LEAD_DAYS) / 2.0 / AVERAGE_MONTH_DAYS
        probability = min(0.5, self.voluntary_hazard(employment, self.start_day) * lead_mean)
        if self.rng.random() >= probability:
            return
        lead = self.rng.randint(*INTENT_LEAD_DAYS)
        elapsed = self.rng.randrange(lead)
        self._plan_resignation(employment, self.start_day - elapsed, lead)

    # ----- hazards ------------------------------------------------------------------------------

    def voluntary_hazard(self, employment: Employment, day: int) -> float:
        """Monthly probability of deciding to resign."""
        risk = employment.person.latent_risk
        tenure_years = (day - employment.hire_day) / 365.25
        if tenure_years < 0.5:
            tenure_factor = 0.7
        elif tenure_years < 2.0:
            tenure_factor = 1.5
        elif tenure_years < 5.0:
            tenure_factor = 1.0
        else:
            tenure_factor = 0.65
        level_factor = (1.25, 1.15, 1.0, 0.9, 0.75, 0.6, 0.0)[employment.job_level - 1]
        hazard = VOLUNTARY_BASE_HAZARD * math.exp(3.0 * (risk - 0.33)) * tenure_factor * level_factor
        # Push factors hit restless people harder: the interaction the model has to find.
        if employment.last_pay_freeze_day is not None and day - employment.last_pay_freeze_day <= 365:
            hazard *= 1.0 + 2.0 * risk
        if employment.last_manager_change_day is not None and day - employment.last_manager_change_day <= 180:
            hazard *= 1.0 + 1.5 * risk
        if employment.last_promotion_day is not None and day - employment.last_promotion_day <= 365:
            hazard *= 0.6
        return hazard

    def _other_exit_hazard(self, employment: Employment, day: int) -> tuple[float, str]:
        if day - employment.hire_day >= 15 * 365:
            return RETIREMENT_HAZARD, "Retirement"
        if employment.fte == "0.5":
            return END_OF_CONTRACT_HAZARD, "End of contract"
        return OTHER_EXIT_HAZARD, "Mutual agreement" if self.rng.random() < 0.8 else "Death"

    # ----- the daily loop -----------------------------------------------------------------------

    def run_day(self, day: int) -> None:
        """Plan (on month starts), run the annual cycles, then apply the day's calendar events."""
        current = date.fromordinal(day)
        if current.day == 1 or day == self.start_day:
            self._plan_month(day)
        if (current.month, current.day) == (3, 1):
            self._run_performance_review(day)
        if (current.month, current.day) == (4, 1):
            self._run_merit_cycle(day)
        for _, _, handler, subject, payload in sorted(
            self._calendar.pop(day, ()), key=lambda event: event[:2]
        ):
            handler(subject, payload, day)
        self.active_employee_days += len(self.active)

    def _plan_month(self, day: int) -> None:
        current = date.fromordinal(day)
        next_month = date(current.year + current.month // 12, current.month % 12 + 1, 1).toordinal()
        span = min(next_month, self.end_day + 1) - day
        share = span / AVERAGE_MONTH_DAYS
        draw = self.rng.random
        for employment in list(self.active.values()):
            if employment.employee_id == self.ceo_id:
                continue
            if (
                employment.voluntary_exit_day is None
                and draw() < self.voluntary_hazard(employment, day) * share
            ):
                self._plan_resignation(
                    employment, day + self.rng.randrange(span), self.rng.randint(*INTENT_LEAD_DAYS)
                )
            if (
                draw()
                < INVOLUNTARY_BASE_HAZARD
                * INVOLUNTARY_RATING_MULTIPLIER[employment.performance_rating]
                * share
            ):
                self._plan_exit(
                    employment,
                    day + self.rng.randrange(span),
                    "Involuntary",
                    _weighted_choice(self.rng, INVOLUNTARY_REASONS),
                )
            other_hazard, other_reason = self._other_exit_hazard(employment, day)
            if draw() < other_hazard * share:
                self._plan_exit(employment, day + self.rng.randrange(span), "Other", other_reason)
            if employment.job_level >= MANAGER_LEVEL:
                continue
            promoted_recently = (
                employment.last_promotion_day is not None and day - employment.last_promotion_day < 540
            )
            if (
                employment.job_level < 4
                and not promoted_recently
                and day - employment.hire_day >= 365
                and draw()
                < PROMOTION_BASE_HAZARD * PROMOTION_RATING_MULTIPLIER[employment.performance_rating] * share
            ):
                self._schedule(day + self.rng.randrange(span), PROMOTION, self._handle_promotion, employment)
            if draw() < TRANSFER_HAZARD * share:
                self._schedule(day + self.rng.randrange(span), TRANSFER, self._handle_transfer, employment)
            if draw() < REORG_MANAGER_CHANGE_HAZARD * share:
                self._schedule(
                    day + self.rng.randrange(span), MANAGER_CHANGE, self._handle_reorg_move, employment
                )
            if draw() < MARKET_ADJUSTMENT_HAZARD * share:
                self._schedule(
                    day + self.rng.randrange(span),
                    MARKET_ADJUSTMENT,
                    self._handle_market_adjustment,
                    employment,
                )
        expected_growth = len(self.active) * GROWTH_HIRES_PER_HEAD_PER_MONTH * share
        growth_hires = int(expected_growth) + (1 if draw() < expected_growth % 1.0 else 0)
        for _ in range(growth_hires):
            department = DEPARTMENTS[_weighted_index(self.rng, self._department_cumulative)]
            location = LOCATIONS[_weighted_index(self.rng, self._location_cumulative)]
            position = Position(
                department.name, self.rng.randint(1, 3), self.rng.choice(department.roles), location.name
            )
            self._schedule(day + self.rng.randrange(span), HIRE, self._handle_hire, position)

    def _plan_resignation(self, employment: Employment, intent_day: int, lead_days: int) -> None:
        employment.intent_day = intent_day
        employment.voluntary_exit_day = intent_day + lead_days
        self._plan_exit(
            employment, intent_day + lead_days, "Voluntary", _weighted_choice(self.rng, VOLUNTARY_REASONS)
        )

    def _run_performance_review(self, day: int) -> None:
        cutoff = _year_start(day)
        for employment in self.active.values():
            if employment.hire_day >= cutoff:
                continue  # joined this year: first rating next March
            previous = employment.performance_rating
            rating = previous if previous is not None and self.rng.random() < 0.55 else self._draw_rating()
            if rating != previous:
                employment.performance_rating = rating
                employment.touch()

    def _run_merit_cycle(self, day: int) -> None:
        cutoff = _year_start(day)
        # Some years one department's budget is frozen for half its people: a shared push factor.
        frozen_department = self.rng.choice(DEPARTMENTS).name if self.rng.random() < 0.5 else ""
        for employment in list(self.active.values()):
            rating = employment.performance_rating
            if employment.hire_day >= cutoff or rating is None:
                continue
            freeze_probability = 0.06 + (0.30 if rating <= 2 else 0.0)
            if employment.department == frozen_department:
                freeze_probability = max(freeze_probability, 0.5)
            if self.rng.random() < freeze_probability:
                self.hris.write_pay_change(
                    employment.employee_id,
                    day,
                    "pay_freeze",
                    employment.salary_cents,
                    employment.salary_cents,
                    employment.currency,
                )
                employment.last_pay_freeze_day = day
                self.stats["pay_freezes"] += 1
                continue
            low, high = {5: (0.05, 0.07), 4: (0.035, 0.05), 3: (0.02, 0.035)}.get(rating, (0.0, 0.015))
            self._change_pay(
                employment, day, "merit_increase", self._raise_cents(employment.salary_cents, low, high)
            )
            self.stats["merit_increases"] += 1

    # ----- event handlers -----------------------------------------------------------------------

    def _handle_exit(self, employment: Employment, payload: tuple[str, str], day: int) -> None:
        if employment.termination_day is not None:
            return  # an earlier exit already happened
        termination_type, reason = payload
        employment.termination_day = day
        employment.termination_type = termination_type
        employment.termination_reason = reason
        employment.known_exit_day = day
        employment.touch()
        del self.active[employment.employee_id]
        self.active_emails.discard(employment.work_email)
        self.stats[f"terminations_{termination_type.lower()}"] += 1
        if employment.job_level == MANAGER_LEVEL:
            self.managers_by_department[employment.department].remove(employment.employee_id)
        elif employment.job_level == HEAD_LEVEL:
            self.head_by_department.pop(employment.department, None)
        # Reports wait with the leaver's own manager until the backfill arrives.
        parked = tuple(employment.reports or ())
        for report_id in parked:
            self._set_manager(self.by_id[report_id], employment.manager_id, day)
        previous_manager = self.by_id.get(employment.manager_id)
        if previous_manager is not None and previous_manager.reports:
            previous_manager.reports.pop(employment.employee_id, None)

        if employment.job_level >= MANAGER_LEVEL:
            backfill_level, delay = employment.job_level, self.rng.randint(10, 45)
        else:
            backfill_level = (
                employment.job_level if self.rng.random() < 0.6 else max(1, employment.job_level - 1)
            )
            delay = self.rng.randint(14, 75)
        self._schedule(
            day + delay,
            HIRE,
            self._handle_hire,
            Position(
                employment.department,
                backfill_level,
                employment.job_role,
                employment.location,
                parked,
                employment.manager_id,
            ),
        )
        if not reason.startswith("Dismissal") and reason != "Death":
            self._rehire_waiting.append((day + REHIRE_WAIT_DAYS, employment.person))
        self._email_reuse_waiting.append((day + EMAIL_REUSE_WAIT_DAYS, employment))
        self.lms.employment_ended(employment, day)

    def _take_rehire_candidate(self) -> Person | None:
        while self._rehire_eligible:
            index = self.mess_rng.randrange(len(self._rehire_eligible))
            self._rehire_eligible[index], self._rehire_eligible[-1] = (
                self._rehire_eligible[-1],
                self._rehire_eligible[index],
            )
            person = self._rehire_eligible.pop()
            if not person.is_employed():
                return person
        return None

    def _take_reusable_email_holder(self) -> Employment | None:
        while self._email_reuse_eligible:
            index = self.mess_rng.randrange(len(self._email_reuse_eligible))
            pool = self._email_reuse_eligible
            pool[index], pool[-1] = pool[-1], pool[index]
            leaver = pool.pop()
            if leaver.work_email not in self.active_emails and not leaver.person.is_employed():
                return leaver
        return None

    def _handle_hire(self, position: Position, _payload: object, day: int) -> None:
        while self._rehire_waiting and self._rehire_waiting[0][0] <= day:
            self._rehire_eligible.append(self._rehire_waiting.popleft()[1])
        while self._email_reuse_waiting and self._email_reuse_waiting[0][0] <= day:
            self._email_reuse_eligible.append(self._email_reuse_waiting.popleft()[1])

        returning = self._take_rehire_candidate() if self._rehire_draws.wants(self.mess_rng) else None
        self.ledger.record(REHIRE, returning is not None)
        email_donor = None
        if returning is not None:
            self._rehire_draws.paid()
            person = returning
        else:
            if self._email_reuse_draws.wants(self.mess_rng):
                email_donor = self._take_reusable_email_holder()
            self.ledger.record(REASSIGNED_EMAIL, email_donor is not None)
            if email_donor is not None:
                # A namesake joins and IT hands them the leaver's recycled mailbox.
                self._email_reuse_draws.paid()
                person = self._new_person(email_donor.person.first_name, email_donor.person.last_name)
            else:
                person = self._new_person_with_fresh_name()

        employment = Employment(f"E{len(self.employments) + 1:06d}", person, day)
        if returning is not None:
            employment.is_rehire = True
            earlier_email = person.employments[-1].work_email
            employment.work_email = (
                earlier_email if earlier_email not in self.active_emails else self._allocate_email(person)
            )
            guid = person.sso_guid if self.mess_rng.random() < REHIRE_KEEPS_SSO_GUID else self._new_guid()
            self.stats["rehires"] += 1
        elif email_donor is not None:
            employment.work_email = email_donor.work_email
            employment.email_reused_from = email_donor
            email_donor.email_later_reassigned = True
            guid = person.sso_guid
            self.stats["reassigned_email_hires"] += 1
        else:
            employment.work_email = self._allocate_email(person)
            guid = person.sso_guid
        employment.sso_guid = self._draw_hris_sso_guid(guid)
        employment.department = position.department
        employment.job_level = position.job_level
        employment.job_role = position.job_role
        employment.location = position.location
        employment.currency = LOCATION_BY_NAME[position.location].currency
        fte_label, fte = (
            FTE_CHOICES[_weighted_index(self.rng, FTE_CUMULATIVE)]
            if position.job_level <= 4
            else FTE_CHOICES[0]
        )
        employment.fte = fte_label
        employment.salary_cents = self._market_salary_cents(
            position.job_level, position.department, position.location, fte
        )
        self._register(employment)
        self._set_manager(employment, self._choose_manager(position.department, position.job_level), None)
        for report_id in position.parked_report_ids:
            report = self.by_id[report_id]
            if (
                report.termination_day is None
                and report.manager_id == position.interim_manager_id
                and report.department == position.department
                and report.job_level < position.job_level
            ):
                self._set_manager(report, employment.employee_id, day)
        self.hris.write_pay_change(
            employment.employee_id, day, "hire", None, employment.salary_cents, employment.currency
        )
        self.stats["hires"] += 1
        self.lms.employment_started(employment, initial=False)

    def _handle_promotion(self, employment: Employment, _payload: object, day: int) -> None:
        if employment.termination_day is not None or employment.job_level >= 4:
            return
        employment.job_level += 1
        employment.last_promotion_day = day
        self._change_pay(employment, day, "promotion", self._raise_cents(employment.salary_cents, 0.08, 0.14))
        self.stats["promotions"] += 1

    def _handle_transfer(self, employment: Employment, _payload: object, day: int) -> None:
        if employment.termination_day is not None:
            return
        same_currency = [
            location.name
            for location in LOCATIONS
            if location.currency == employment.currency and location.name != employment.location
        ]
        if same_currency and self.rng.random() < 0.6:
            # Moves stay within a currency zone, so pay history keeps one currency.
            employment.location = self.rng.choice(same_currency)
            employment.touch()
        else:
            others = [department for department in DEPARTMENTS if department.name != employment.department]
            department = self.rng.choice(others)
            employment.department = department.name
            employment.job_role = self.rng.choice(department.roles)
            self._set_manager(employment, self._choose_manager(department.name, employment.job_level), day)
        self.stats["transfers"] += 1

    def _handle_reorg_move(self, employment: Employment, _payload: object, day: int) -> None:
        if employment.termination_day is not None:
            return
        candidates = [
            manager_id
            for manager_id in self.managers_by_department[employment.department]
            if manager_id != employment.manager_id
        ]
        if candidates:
            self._set_manager(employment, self.rng.choice(candidates), day)

    def _handle_market_adjustment(self, employment: Employment, _payload: object, day: int) -> None:
        if employment.termination_day is not None:
            return
        self._change_pay(
            employment, day, "market_adjustment", self._raise_cents(employment.salary_cents, 0.04, 0.10)
        )
        self.stats["market_adjustments"] += 1

    # ----- snapshots ----------------------------------------------------------------------------

    def snapshot_employments(self, day: int) -> Iterator[Employment]:
        """Everyone in the `day` snapshot, in employee_id order; drops those terminated over 90 days ago."""
        stale = [
            employee_id
            for employee_id, employment in self.in_snapshot.items()
            if employment.termination_day is not None
            and day - employment.termination_day > SNAPSHOT_LOOKBACK_DAYS
        ]
        for employee_id in stale:
            self.in_snapshot.pop(employee_id).touch()  # gone from every later snapshot: free its cached row
        return iter(self.in_snapshot.values())
