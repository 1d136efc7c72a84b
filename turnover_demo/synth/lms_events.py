"""The LMS side: SCIM user accounts and the xAPI statements their owners produce.

Accounts (`lms/users.jsonl`, final directory state, oldest first): every employment gets a
primary account a few days after hire (the starting workforce had theirs before the period);
`userName` is the LMS email, unique case-insensitively. Some primary accounts carry an email
variant (case, plus alias, alias domain), some people get a duplicate account (alias email, no
externalId), and LMS-only contractor accounts (`@contractor.example`) exist beside them. Leavers'
accounts are deactivated one or two days after the exit (half of the duplicates are forgotten
and stay active). When a new account wants the userName of an inactive one, the LMS renames the
old one to `<userName>#released-YYYYMMDD`; its email still carries the address.

Statements (`lms/statements.jsonl`, xAPI 1.0.3, in `stored` order as an LRS holds them): an
actor with exactly one identifier (`account` with the LMS user id, or `mbox` with the email the
LMS knows), an ADL verb (`registered`, `launched`, `scored`, `completed`, `passed`, `failed`,
and `voided` for voiding statements, whose targets stay in the file), a course Activity,
`result` where it makes sense, `context.registration` per enrolment and, for mandatory
assignments, `context.extensions` with the due date.

Activity: self-directed sessions form a thinned Poisson process per account; each one enrols in
or continues an optional course. Mandatory courses are assigned at onboarding and in the
January/July compliance campaigns (catalog tags `annual`/`semiannual`) and done in compliance
sittings, some after the due date. Rates depend on a per-person appetite for learning that is
independent of everything in HR, an onboarding boost, and - only when `signal_strength` > 0 - a
fade after a resignation intent in proportion to `signal_strength` x `latent_risk` (sessions,
completion odds, scores and compliance diligence all fade). Involuntary exits play no part.

Streaming: statements wait in a heap until no later session can produce an earlier `stored`
time, so only about one day of statements (plus the few stored late) is ever in memory.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import json
import math
from collections.abc import Container, Iterator
from datetime import date
from itertools import accumulate
from pathlib import Path
from random import Random

from turnover_demo.synth.catalog import Course
from turnover_demo.synth.clock import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    day_of_ms,
    day_start_ms,
    iso_date,
    iso_duration_minutes,
    iso_instant,
    iso_instant_seconds,
)
from turnover_demo.synth.config import SynthConfig
from turnover_demo.synth.identity_mess import (
    CONTRACTOR,
    CONTRACTOR_DOMAIN,
    CONTRACTOR_LOOKALIKE,
    DOMAIN_ALIAS,
    DROPPED_GUID,
    DUPLICATE_ACCOUNT,
    EMAIL_CASE,
    EMAIL_LATER_REASSIGNED,
    EMAIL_TYPO,
    MISSING_SSO_GUID,
    NAMESAKE,
    PERSONAL_DOMAIN,
    PLUS_ALIAS,
    REASSIGNED_EMAIL,
    REHIRE,
    USERNAME_RELEASED,
    USERNAME_SUFFIXED,
    MessLedger,
    domain_alias,
    email_case_variant,
    email_typo,
    personal_address,
    plus_alias,
)
from turnover_demo.synth.names import draw_name, email_local_part
from turnover_demo.synth.population import Employment, Person

LMS_HOME_PAGE = "https://lms.northwind.example"
COURSE_IRI_PREFIX = f"{LMS_HOME_PAGE}/courses/"
EXTENSION_MANDATORY = f"{LMS_HOME_PAGE}/xapi/extensions/mandatory"
EXTENSION_DUE_DATE = f"{LMS_HOME_PAGE}/xapi/extensions/due-date"
XAPI_VERSION = "1.0.3"
SCIM_USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
ADL_VERB_PREFIX = "http://adlnet.gov/expapi/verbs/"
LEARNER_VERBS = ("registered", "launched", "completed", "passed", "failed", "scored")

# Engagement and session model. Mandatory (compliance) work has its own volume, set by the catalog and
# the calendar (see `expected_mandatory_statements_per_month`); self-directed sessions fill the rest of
# --statements-per-month at about STATEMENTS_PER_SESSION each (registered, launched, scored, completed
# and a verdict). The per-item figures were measured on generated data.
STATEMENTS_PER_SESSION = 3.3
STATEMENTS_PER_MANDATORY_ASSIGNMENT = 3.9  # registered, launched, completed, passed, and some retakes
HIRES_PER_EMPLOYEE_MONTH = 0.0127  # new hires get every mandatory course at onboarding
MIN_SELF_DIRECTED_STATEMENTS_PER_MONTH = 0.25
COMPLIANCE_DELAY_SHARE_OF_DUE = 0.4  # mean delay before a compliance sitting, as a share of the time to due
MANDATORY_COURSES_PER_SITTING = 4
REMINDER_INTERVAL_DAYS = 7
ENGAGEMENT_SIGMA = 0.6  # log-normal spread of people's learning appetite (mean 1)
ONBOARDING_BOOST = 2.0  # new hires learn twice as much in their first weeks
ONBOARDING_DAYS = 45
DUPLICATE_ACCOUNT_SHARE = 0.4  # a duplicate account sees this much extra activity of its owner
DISENGAGEMENT_DEPTH = 2.0  # at signal strength 1, a risk-0.45 person falls to 10% by the exit day
SESSION_END_MARGIN_MS = (
    6 * HOUR_MS
)  # a sitting (up to ~3 h) and its voids (+1.5 h) end before the owner leaves
PASS_MARK = 70
MAX_OPEN_OPTIONAL_COURSES = 4
LMS_PROVISIONING_LEAD_YEARS = 4  # the LMS went live this long before the simulated period
# Hours of the day (UTC) when sessions start, weighted towards office hours.
SESSION_HOUR_CUMULATIVE = list(
    accumulate(
        (
            0.2,
            0.1,
            0.1,
            0.1,
            0.2,
            0.5,
            1.0,
            2.0,
            4.0,
            6.0,
            6.0,
            5.0,
            4.0,
            5.0,
            6.0,
            6.0,
            5.0,
            3.5,
            2.0,
            1.5,
            1.2,
            1.0,
            0.6,
            0.3,
        )
    )
)

OUTPUT_MBOX, OUTPUT_LATE, OUTPUT_VOIDING, OUTPUT_VOIDED = 1, 2, 4, 8


def random_uuid4(rng: Random) -> str:
    """A version-4 UUID from `rng` (what `uuid.UUID(int=..., version=4)` gives, without its overhead)."""
    value = rng.getrandbits(128)
    value = (value & _UUID4_CLEAR) | _UUID4_SET
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


_UUID4_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_UUID4_SET = (0x8000 << 48) | (4 << 76)


def compact_json(value: object) -> str:
    """JSON without spaces and with UTF-8 text, as the LRS and SCIM server emit it."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# Fragments that never change are rendered once with json.dumps and spliced into each statement.
VERB_JSON = {
    verb: compact_json({"id": ADL_VERB_PREFIX + verb, "display": {"en-US": verb}})
    for verb in (*LEARNER_VERBS, "voided")
}


class CourseAttempt:
    """One registration of an account on a course, from `registered` to `passed`."""

    __slots__ = ("course", "registration", "launches_done", "launches_needed", "minutes", "due_day")

    def __init__(self, course: Course, registration: str, launches_needed: int, due_day: int | None) -> None:
        self.course = course
        self.registration = registration
        self.launches_done = 0
        self.launches_needed = launches_needed
        self.minutes = 0
        self.due_day = due_day


class LmsAccount:
    """A user of the LMS directory, its owner (if an employee), and its learning state."""

    __slots__ = (
        "lms_user_id",
        "person",
        "employment",
        "given_name",
        "family_name",
        "email",
        "user_name",
        "external_id",
        "created_ms",
        "deactivated_ms",
        "last_modified_ms",
        "contractor_end_ms",
        "is_contractor",
        "is_duplicate",
        "mess_kinds",
        "actor_account_json",
        "engagement",
        "skill",
        "onboarding_until_day",
        "session_share",
        "mandatory_open",
        "optional_open",
        "passed_optional_mask",
        "job_level",
        "index",
        "compliance_sitting_planned",
    )

    def __init__(self) -> None:
        self.lms_user_id = ""
        self.person: Person | None = None
        self.employment: Employment | None = None
        self.given_name = ""
        self.family_name = ""
        self.email = ""
        self.user_name = ""
        self.external_id: str | None = None
        self.created_ms = 0
        self.deactivated_ms: int | None = None
        self.last_modified_ms = 0
        self.contractor_end_ms: int | None = None
        self.is_contractor = False
        self.is_duplicate = False
        self.mess_kinds: list[str] = []
        self.actor_account_json = ""  # cached: most statements name the account
        self.engagement = 1.0
        self.skill = 0.0
        self.onboarding_until_day = 0
        self.session_share = 1.0
        self.mandatory_open: dict[str, CourseAttempt] | None = {}
        self.optional_open: dict[str, CourseAttempt] | None = {}
        # Bit i set = optional course i passed. An int instead of a set: 140,000 sets cost ~100 MB.
        self.passed_optional_mask = 0
        self.job_level = 3
        self.index = 0
        self.compliance_sitting_planned = False


class StatementSink:
    """Writes statements to `statements.jsonl` in `stored` order, holding only those not yet final."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle = open(path, "wb")  # noqa: SIM115 - closed in close(); lines stream in over the run
        self._digest = hashlib.sha256()
        self._pending: list[tuple[int, int, str, int]] = []
        self._sequence = 0
        self.written = 0
        self.learner_statements = 0
        self.voiding_statements = 0
        self.mbox_statements = 0
        self.late_statements = 0
        self.voided_targets = 0
        self.not_yet_stored = 0

    def push(self, stored_ms: int, line: str, flags: int) -> None:
        """Queue one statement line (ending in a newline) for its `stored` time."""
        self._sequence += 1
        heapq.heappush(self._pending, (stored_ms, self._sequence, line, flags))

    def flush_before(self, instant_ms: int) -> None:
        """Write every queued statement stored before `instant_ms`: nothing earlier can still arrive."""
        pending = self._pending
        lines = []
        while pending and pending[0][0] < instant_ms:
            _, _, line, flags = heapq.heappop(pending)
            lines.append(line)
            if flags & OUTPUT_VOIDING:
                self.voiding_statements += 1
            else:
                self.learner_statements += 1
                if flags & OUTPUT_MBOX:
                    self.mbox_statements += 1
                if flags & OUTPUT_LATE:
                    self.late_statements += 1
                if flags & OUTPUT_VOIDED:
                    self.voided_targets += 1
        if lines:
            data = "".join(lines).encode("utf-8")
            self._digest.update(data)
            self._handle.write(data)
            self.written += len(lines)

    def close(self, period_end_exclusive_ms: int) -> dict[str, object]:
        """Flush up to the end of the period; statements an LRS would store later are not in the file."""
        self.flush_before(period_end_exclusive_ms)
        self.not_yet_stored = len(self._pending)
        self._pending.clear()
        self._handle.close()
        return {"rows": self.written, "sha256": self._digest.hexdigest(), "bytes": self.path.stat().st_size}


class LearningSimulator:
    """Provisions LMS accounts as HR events happen and simulates their learning, day by day."""

    def __init__(
        self,
        config: SynthConfig,
        catalog: list[Course],
        start_day: int,
        end_day: int,
        rng: Random,
        mess_rng: Random,
        ledger: MessLedger,
        sink: StatementSink,
        fuzzy_mess_rng: Random,
    ) -> None:
        self.config = config
        self.fuzzy_mess_rng = fuzzy_mess_rng
        self.email_typo_rate = config.effective_rate("email_typo_rate")
        self.personal_domain_rate = config.effective_rate("personal_domain_rate")
        self.dropped_guid_rate = config.effective_rate("dropped_guid_rate")
        self.contractor_lookalike_rate = config.effective_rate("contractor_lookalike_rate")
        # Every corporate address ever issued (the HR side fills it): a typo must not land on one.
        self.issued_corporate_emails: Container[str] = ()
        self.start_day = start_day
        self.end_day = end_day
        self.start_ms = day_start_ms(start_day)
        self.end_exclusive_ms = day_start_ms(end_day + 1)
        self.lms_live_ms = day_start_ms(start_day - int(LMS_PROVISIONING_LEAD_YEARS * 365.25))
        self.rng = rng
        self.mess_rng = mess_rng
        self.ledger = ledger
        self.sink = sink
        self.signal_strength = config.signal_strength
        self.mbox_rate = config.effective_rate("mbox_rate")
        self.late_rate = config.late_rate
        self.void_rate = config.void_rate
        self.email_case_rate = config.effective_rate("email_case_rate")
        self.plus_alias_rate = config.effective_rate("plus_alias_rate")
        self.domain_alias_rate = config.effective_rate("domain_alias_rate")
        self.duplicate_rate = config.effective_rate("duplicate_account_rate")
        self.contractor_rate = config.effective_rate("contractor_rate")
        self.mandatory_courses = [course for course in catalog if course.is_mandatory]
        self.optional_courses = [course for course in catalog if not course.is_mandatory]
        self.optional_index = {course.course_id: index for index, course in enumerate(self.optional_courses)}
        self.campaign_courses = {
            1: [
                course
                for course in self.mandatory_courses
                if "annual" in course.skill_tags or "semiannual" in course.skill_tags
            ],
            7: [course for course in self.mandatory_courses if "semiannual" in course.skill_tags],
        }
        session_statements = max(
            MIN_SELF_DIRECTED_STATEMENTS_PER_MONTH,
            config.statements_per_month - self.expected_mandatory_statements_per_month(),
        )
        self.sessions_per_day = session_statements / STATEMENTS_PER_SESSION / 30.44
        # People prefer courses near their seniority: difficulty ~ 1 + 0.6 x level.
        self.optional_cumulative_by_level = {
            level: list(
                accumulate(
                    math.exp(-abs(course.difficulty - (1 + 0.6 * level))) for course in self.optional_courses
                )
            )
            for level in range(1, 8)
        }
        self.object_json = {
            course.course_id: compact_json(
                {
                    "objectType": "Activity",
                    "id": COURSE_IRI_PREFIX + course.course_id,
                    "definition": {
                        "name": {"en-US": course.title},
                        "type": "http://adlnet.gov/expapi/activities/course",
                    },
                }
            )
            for course in catalog
        }

        self.accounts: list[LmsAccount] = []
        self.primary_employee_accounts: list[LmsAccount] = []
        self._user_ids: set[str] = set()  # membership only
        self._user_name_holders: dict[str, LmsAccount] = {}  # lower-cased userName -> account
        self._contractor_emails: set[str] = set()
        self._pending_accounts: list[tuple[int, int, LmsAccount]] = []
        self._sessions: list[tuple[int, int, LmsAccount, bool]] = []  # (start, seq, account, is_compliance)
        self._close_after_day: dict[int, list[LmsAccount]] = {}  # leavers' accounts, by exit day
        self._sequence = 0
        self.stats: dict[str, int] = {
            "mandatory_assignments": 0,
            "mandatory_completed_on_time": 0,
            "mandatory_completed_late": 0,
            "mandatory_overdue_open": 0,
            "mandatory_open_not_due": 0,
            "course_completions": 0,
            "sessions": 0,
            "employee_learner_statements": 0,
        }

    def expected_mandatory_statements_per_month(self) -> float:
        """Compliance statements per employee-month that the catalog and the period's campaigns imply."""
        months = (self.end_day - self.start_day + 1) / 30.44
        campaign_assignments = 0
        for year in range(date.fromordinal(self.start_day).year, date.fromordinal(self.end_day).year + 1):
            for month, courses in self.campaign_courses.items():
                if self.start_day <= date(year, month, 10).toordinal() <= self.end_day:
                    campaign_assignments += len(courses)
        assignments_per_month = campaign_assignments / months + HIRES_PER_EMPLOYEE_MONTH * len(
            self.mandatory_courses
        )
        return STATEMENTS_PER_MANDATORY_ASSIGNMENT * assignments_per_month

    # ----- accounts -----------------------------------------------------------------------------

    def _next_sequence(self) -> int:
        self._sequence += 1
        return self._sequence

    def _new_user_id(self) -> str:
        while True:
            candidate = f"u-{self.rng.getrandbits(40):010x}"
            if candidate not in self._user_ids:
                self._user_ids.add(candidate)
                return candidate

    def _queue_account(self, account: LmsAccount) -> None:
        if account.created_ms >= self.end_exclusive_ms:
            return  # not provisioned before the period ends
        if account.created_ms < self.start_ms:
            self._open_account(account)
        else:
            heapq.heappush(self._pending_accounts, (account.created_ms, self._next_sequence(), account))

    def _owner_limit_ms(self, account: LmsAccount) -> int:
        """The instant after which the account's owner can no longer produce activity."""
        limit = self.end_exclusive_ms
        employment = account.employment
        if employment is not None and employment.known_exit_day is not None:
            limit = min(limit, day_start_ms(employment.known_exit_day + 1))
        if account.contractor_end_ms is not None:
            limit = min(limit, account.contractor_end_ms)
        return limit

    def employment_started(self, employment: Employment, initial: bool) -> None:
        """Plan the primary account of a new employment (and draw whether a contractor appears)."""
        if initial:
            # The starting workforce was provisioned years ago (or when the LMS went live).
            hire_ms = day_start_ms(employment.hire_day) + self.rng.randint(0, 3 * DAY_MS)
            created_ms = max(hire_ms, self.lms_live_ms + self.rng.randint(0, 30 * DAY_MS))
        else:
            created_ms = day_start_ms(employment.hire_day) + 6 * HOUR_MS + self.rng.randint(0, 3 * DAY_MS)
        account = LmsAccount()
        account.employment = employment
        account.person = employment.person
        account.created_ms = created_ms - created_ms % 1000
        account.job_level = employment.job_level
        if not initial:
            account.onboarding_until_day = day_of_ms(created_ms) + ONBOARDING_DAYS
        self._queue_account(account)

        spawns_contractor = self.mess_rng.random() < self.contractor_rate
        self.ledger.record(CONTRACTOR, spawns_contractor)
        if spawns_contractor:
            first_ms = self.start_ms - 180 * DAY_MS if initial else day_start_ms(employment.hire_day)
            self._plan_contractor(self.mess_rng.randint(first_ms, self.end_exclusive_ms - 1), employment)

    def _plan_contractor(self, created_ms: int, employment: Employment) -> None:
        """An LMS-only contractor account; now and then (contractor_lookalike_rate) one who shares the
        name and the address's local part of `employment`'s holder, the trap for a name-based matcher."""
        account = LmsAccount()
        account.is_contractor = True
        account.given_name, account.family_name = draw_name(self.mess_rng)
        local = email_local_part(account.given_name, account.family_name)
        wants_lookalike = self.fuzzy_mess_rng.random() < self.contractor_lookalike_rate
        if wants_lookalike:
            account.given_name, account.family_name = (
                employment.person.first_name,
                employment.person.last_name,
            )
            local = employment.work_email.partition("@")[0]
        suffix = 1
        while True:
            email = f"{local}@{CONTRACTOR_DOMAIN}" if suffix == 1 else f"{local}{suffix}@{CONTRACTOR_DOMAIN}"
            suffix += 1
            if email not in self._contractor_emails:
                break
        self._contractor_emails.add(email)
        # Only a contractor who really got the employee's local part counts (another lookalike may hold it).
        is_lookalike = wants_lookalike and suffix == 2
        self.ledger.record(CONTRACTOR_LOOKALIKE, is_lookalike)
        if is_lookalike:
            account.mess_kinds.append(CONTRACTOR_LOOKALIKE)
        account.email = email
        account.created_ms = created_ms - created_ms % 1000
        account.contractor_end_ms = account.created_ms + self.mess_rng.randint(60, 540) * DAY_MS
        account.mess_kinds.append(CONTRACTOR)
        self._queue_account(account)

    def _open_account(self, account: LmsAccount) -> None:
        """The account comes into existence: identity mess, userName, session stream, onboarding."""
        employment = account.employment
        if employment is not None:
            if employment.termination_day is not None or (
                employment.known_exit_day is not None
                and account.created_ms >= day_start_ms(employment.known_exit_day + 1)
            ):
                return  # left before the LMS caught up
            if not account.is_duplicate:
                self._apply_primary_identity(account, employment)
        account.lms_user_id = self._new_user_id()
        account.last_modified_ms = account.created_ms
        self._claim_user_name(account)
        account.index = len(self.accounts)
        self.accounts.append(account)
        display_name = f"{account.given_name} {account.family_name}"
        account.actor_account_json = compact_json(
            {
                "objectType": "Agent",
                "name": display_name,
                "account": {"homePage": LMS_HOME_PAGE, "name": account.lms_user_id},
            }
        )

        owner = account.person
        if owner is not None:
            if owner.learning_engagement is None:
                owner.learning_engagement = self.rng.lognormvariate(
                    -(ENGAGEMENT_SIGMA**2) / 2, ENGAGEMENT_SIGMA
                )
            account.engagement = owner.learning_engagement
        else:
            account.engagement = self.rng.lognormvariate(-(ENGAGEMENT_SIGMA**2) / 2, ENGAGEMENT_SIGMA)
        account.skill = self.rng.gauss(0.0, 0.05)
        if employment is not None and not account.is_duplicate:
            self.primary_employee_accounts.append(account)
            if account.onboarding_until_day:
                at_ms = account.created_ms + self.rng.randint(MINUTE_MS, 30 * MINUTE_MS)
                for course in self.mandatory_courses:
                    self._assign_mandatory(account, course, at_ms)
                    at_ms += self.rng.randint(1000, 20_000)
        self._schedule_next_session(account, max(account.created_ms, self.start_ms))

    def _apply_primary_identity(self, account: LmsAccount, employment: Employment) -> None:
        """Copy the HR identity onto the primary account, with the drawn email variant and extra accounts."""
        account.given_name = employment.person.first_name
        account.family_name = employment.person.last_name
        account.external_id = employment.sso_guid or None
        draw = self.mess_rng.random()
        email = employment.work_email
        kinds = account.mess_kinds
        if draw < self.email_case_rate:
            email = email_case_variant(email, self.mess_rng)
            kinds.append(EMAIL_CASE)
        elif draw < self.email_case_rate + self.plus_alias_rate:
            email = plus_alias(email, self.mess_rng)
            kinds.append(PLUS_ALIAS)
        elif draw < self.email_case_rate + self.plus_alias_rate + self.domain_alias_rate:
            email = domain_alias(email)
            kinds.append(DOMAIN_ALIAS)
        for kind in (EMAIL_CASE, PLUS_ALIAS, DOMAIN_ALIAS):
            self.ledger.record(kind, kind in kinds)
        account.email = self._apply_fuzzy_email_mess(account, email)
        if not employment.sso_guid:
            kinds.append(MISSING_SSO_GUID)
        else:
            dropped = self.fuzzy_mess_rng.random() < self.dropped_guid_rate
            self.ledger.record(DROPPED_GUID, dropped)
            if dropped:
                account.external_id = None
                kinds.append(DROPPED_GUID)
        if employment.person.is_namesake:
            kinds.append(NAMESAKE)
        if employment.is_rehire:
            kinds.append(REHIRE)
        if employment.email_reused_from is not None:
            kinds.append(REASSIGNED_EMAIL)
            for earlier in employment.email_reused_from.lms_accounts:
                if EMAIL_LATER_REASSIGNED not in earlier.mess_kinds:
                    earlier.mess_kinds.append(EMAIL_LATER_REASSIGNED)
        employment.lms_accounts.append(account)

        has_duplicate = self.mess_rng.random() < self.duplicate_rate
        self.ledger.record(DUPLICATE_ACCOUNT, has_duplicate)
        if has_duplicate:
            self._plan_duplicate(account, employment)

    def _apply_fuzzy_email_mess(self, account: LmsAccount, email: str) -> str:
        """A typo in the address, or a personal or unknown-domain address instead (which replaces any
        corporate variant drawn before: the account no longer carries one)."""
        draw = self.fuzzy_mess_rng.random()
        kinds = account.mess_kinds
        if draw < self.email_typo_rate:
            typo = email_typo(email, self.fuzzy_mess_rng, self.issued_corporate_emails)
            if typo != email:
                email = typo
                kinds.append(EMAIL_TYPO)
        elif draw < self.email_typo_rate + self.personal_domain_rate:
            email = personal_address(account.given_name, account.family_name, self.fuzzy_mess_rng)
            kinds[:] = [kind for kind in kinds if kind not in (EMAIL_CASE, PLUS_ALIAS, DOMAIN_ALIAS)]
            kinds.append(PERSONAL_DOMAIN)
        self.ledger.record(EMAIL_TYPO, EMAIL_TYPO in kinds)
        self.ledger.record(PERSONAL_DOMAIN, PERSONAL_DOMAIN in kinds)
        return email

    def _plan_duplicate(self, primary: LmsAccount, employment: Employment) -> None:
        """A second account of the same person, typically self-registered with an alias address."""
        duplicate = LmsAccount()
        duplicate.is_duplicate = True
        duplicate.employment = employment
        duplicate.person = employment.person
        duplicate.given_name, duplicate.family_name = primary.given_name, primary.family_name
        duplicate.job_level = primary.job_level
        duplicate.session_share = DUPLICATE_ACCOUNT_SHARE
        base = employment.work_email
        # Never a case-only variant: userNames are case-insensitive and the primary holds that one.
        if PLUS_ALIAS in primary.mess_kinds or (
            DOMAIN_ALIAS not in primary.mess_kinds and self.mess_rng.random() < 0.4
        ):
            duplicate.email = domain_alias(base)
            duplicate.mess_kinds.extend((DUPLICATE_ACCOUNT, DOMAIN_ALIAS))
        else:
            duplicate.email = plus_alias(base, self.mess_rng)
            duplicate.mess_kinds.extend((DUPLICATE_ACCOUNT, PLUS_ALIAS))
        if employment.person.is_namesake:
            duplicate.mess_kinds.append(NAMESAKE)
        # Usually created by hand, so no SSO link; now and then an admin copies the externalId.
        duplicate.external_id = (employment.sso_guid or None) if self.mess_rng.random() < 0.05 else None
        created = primary.created_ms + self.mess_rng.randint(2 * DAY_MS, 120 * DAY_MS)
        limit = self._owner_limit_ms(primary)
        if created >= limit - DAY_MS:
            created = max(primary.created_ms + HOUR_MS, limit - DAY_MS)  # before a known exit
        duplicate.created_ms = created - created % 1000
        employment.lms_accounts.append(duplicate)
        self._queue_account(duplicate)

    def _claim_user_name(self, account: LmsAccount) -> None:
        """userName = the LMS email; unique case-insensitively, as SCIM servers enforce it."""
        wanted = account.email
        holder = self._user_name_holders.get(wanted.lower())
        if holder is not None:
            if holder.deactivated_ms is not None and holder.deactivated_ms <= account.created_ms:
                # The LMS releases an inactive account's userName when a new account wants it.
                released = (
                    f"{holder.user_name}#released-{iso_date(day_of_ms(account.created_ms)).replace('-', '')}"
                )
                holder.user_name = released
                holder.last_modified_ms = max(holder.last_modified_ms, account.created_ms)
                holder.mess_kinds.append(USERNAME_RELEASED)
                self._user_name_holders[released.lower()] = holder
                self.ledger.add(USERNAME_RELEASED)
            else:
                local, _, domain = wanted.partition("@")
                suffix = 2
                while f"{local}.{suffix}@{domain}".lower() in self._user_name_holders:
                    suffix += 1
                wanted = f"{local}.{suffix}@{domain}"
                account.mess_kinds.append(USERNAME_SUFFIXED)
                self.ledger.add(USERNAME_SUFFIXED)
        account.user_name = wanted
        self._user_name_holders[wanted.lower()] = account

    def employment_ended(self, employment: Employment, day: int) -> None:
        """Deactivate the leaver's accounts a day or two after the exit (duplicates only sometimes)."""
        for account in employment.lms_accounts:
            if not account.lms_user_id:
                continue  # never opened
            self._close_after_day.setdefault(day, []).append(account)
            if account.is_duplicate and self.mess_rng.random() < 0.5:
                continue  # nobody knew about it: it stays active
            deactivated = day_start_ms(day + 1) + self.mess_rng.randint(HOUR_MS, 48 * HOUR_MS)
            deactivated -= deactivated % 1000
            if deactivated < self.end_exclusive_ms:
                account.deactivated_ms = deactivated
                account.last_modified_ms = max(account.last_modified_ms, deactivated)

    def _deactivate_contractor_if_due(self, account: LmsAccount) -> None:
        if account.contractor_end_ms is None or account.deactivated_ms is not None:
            return
        deactivated = account.contractor_end_ms + self.mess_rng.randint(HOUR_MS, 72 * HOUR_MS)
        deactivated -= deactivated % 1000
        if deactivated < self.end_exclusive_ms:
            account.deactivated_ms = deactivated
            account.last_modified_ms = max(account.last_modified_ms, deactivated)

    # ----- the daily loop -----------------------------------------------------------------------

    def run_day(self, day: int) -> None:
        """Open the day's accounts, run campaigns and sessions, and write what is final."""
        day_end_ms = day_start_ms(day + 1)
        pending = self._pending_accounts
        while pending and pending[0][0] < day_end_ms:
            self._open_account(heapq.heappop(pending)[2])
        self._run_compliance_campaign(day)
        sessions = self._sessions
        while sessions and sessions[0][0] < day_end_ms:
            start_ms, _, account, is_compliance = heapq.heappop(sessions)
            if account.mandatory_open is None:
                continue  # learning already closed
            if start_ms > self._owner_limit_ms(account) - SESSION_END_MARGIN_MS:
                continue  # the owner leaves first (an exit planned after this was drawn)
            if is_compliance:
                self._run_compliance_sitting(account, start_ms)
            else:
                self._schedule_next_session(account, self._run_session(account, start_ms))
        for account in self._close_after_day.pop(day, ()):
            self._close_learning(account)
        self.sink.flush_before(day_end_ms)

    def _run_compliance_campaign(self, day: int) -> None:
        """January and July: re-assign compliance courses, spread over 15 days to even the load."""
        current = date.fromordinal(day)
        courses = self.campaign_courses.get(current.month)
        offset = current.day - 10
        if not courses or not 0 <= offset < 15:
            return
        day_ms = day_start_ms(day)
        for account in self.primary_employee_accounts:
            if account.index % 15 != offset or account.mandatory_open is None:
                continue
            employment = account.employment
            if (
                employment is None
                or employment.termination_day is not None
                or account.onboarding_until_day > day
            ):
                continue
            at_ms = day_ms + 5 * HOUR_MS + self.rng.randint(0, 2 * HOUR_MS)
            if at_ms > self._owner_limit_ms(account) - SESSION_END_MARGIN_MS:
                continue
            for course in courses:
                self._assign_mandatory(account, course, at_ms)
                at_ms += self.rng.randint(1000, 20_000)

    def _assign_mandatory(self, account: LmsAccount, course: Course, at_ms: int) -> None:
        if account.mandatory_open is None or course.course_id in account.mandatory_open:
            return  # still open from an earlier assignment: it simply stays (over)due
        if at_ms > self._owner_limit_ms(account) - SESSION_END_MARGIN_MS:
            return  # provisioned on the way out: nothing is assigned any more
        due_day = day_of_ms(at_ms) + (course.due_within_days or 30)
        attempt = CourseAttempt(course, self._new_uuid(), self._launches_needed(course), due_day)
        account.mandatory_open[course.course_id] = attempt
        self.stats["mandatory_assignments"] += 1
        self._emit(account, at_ms, "registered", attempt, None)
        if not account.compliance_sitting_planned:
            self._plan_compliance_sitting(account, at_ms, attempt.due_day - day_of_ms(at_ms))

    def _plan_compliance_sitting(self, account: LmsAccount, after_ms: int, days_to_due: int) -> None:
        """When the owner will sit down for their open mandatory courses.

        The delay is exponential with a mean of a fraction of the time to the due date, longer
        for people with little appetite for learning and (signal strength > 0) after a
        resignation intent: some courses end up overdue.
        """
        rng = self.rng
        # Compliance is nagged for, so appetite matters less (square root) than a fading commitment
        # to the job (squared): people on their way out let mandatory training slide.
        fading = self._engagement_factor(account.employment, day_of_ms(after_ms))
        diligence = math.sqrt(account.engagement) * fading * fading
        # Past or near the due date, reminders come weekly rather than ever more urgently.
        horizon_days = max(REMINDER_INTERVAL_DAYS, days_to_due)
        mean_delay_ms = COMPLIANCE_DELAY_SHARE_OF_DUE * horizon_days * DAY_MS / max(0.05, diligence)
        delay_ms = max(HOUR_MS, int(rng.expovariate(1.0 / mean_delay_ms)))
        day_start = (after_ms + delay_ms) - (after_ms + delay_ms) % DAY_MS
        hour = bisect.bisect_right(SESSION_HOUR_CUMULATIVE, rng.random() * SESSION_HOUR_CUMULATIVE[-1])
        start_ms = max(after_ms + MINUTE_MS, day_start + min(hour, 23) * HOUR_MS + rng.randrange(HOUR_MS))
        if start_ms > self._owner_limit_ms(account) - SESSION_END_MARGIN_MS:
            return  # the owner leaves first: the courses stay open
        account.compliance_sitting_planned = True
        heapq.heappush(self._sessions, (start_ms, self._next_sequence(), account, True))

    def _run_compliance_sitting(self, account: LmsAccount, start_ms: int) -> None:
        """Work through the open mandatory courses, earliest due first, a few per sitting."""
        account.compliance_sitting_planned = False
        engagement = self._engagement_factor(account.employment, day_of_ms(start_ms))
        now = start_ms
        due_first = sorted(account.mandatory_open.values(), key=lambda attempt: attempt.due_day)
        for attempt in due_first[:MANDATORY_COURSES_PER_SITTING]:
            now = self._work_on(account, attempt, now, engagement, finish=True) + self.rng.randint(
                MINUTE_MS, 10 * MINUTE_MS
            )
        if account.mandatory_open:
            # A failed test or more courses: another sitting soon.
            nearest_due = min(attempt.due_day for attempt in account.mandatory_open.values())
            self._plan_compliance_sitting(account, now, nearest_due - day_of_ms(now))

    def _intensity(self, account: LmsAccount, day: int) -> float:
        """Relative session rate on `day`: onboarding boost x fading engagement after a resignation intent."""
        boost = ONBOARDING_BOOST if day < account.onboarding_until_day else 1.0
        return boost * self._engagement_factor(account.employment, day)

    def _engagement_factor(self, employment: Employment | None, day: int) -> float:
        """1 normally; after a resignation intent it falls with signal_strength x latent_risk."""
        if (
            employment is None
            or self.signal_strength == 0.0
            or employment.intent_day is None
            or day < employment.intent_day
        ):
            return 1.0
        exit_day = employment.voluntary_exit_day
        ramp = min(1.0, (day - employment.intent_day) / max(1, exit_day - employment.intent_day))
        return max(
            0.05, 1.0 - self.signal_strength * employment.person.latent_risk * ramp * DISENGAGEMENT_DEPTH
        )

    def _schedule_next_session(self, account: LmsAccount, after_ms: int) -> None:
        """Draw the next session by thinning: candidates at the peak rate, kept with the day's intensity."""
        upper_rate_per_ms = (
            self.sessions_per_day * account.engagement * account.session_share * ONBOARDING_BOOST / DAY_MS
        )
        limit_ms = self._owner_limit_ms(account) - SESSION_END_MARGIN_MS
        rng = self.rng
        candidate_ms = after_ms
        while True:
            candidate_ms += int(rng.expovariate(upper_rate_per_ms)) + 1
            if candidate_ms > limit_ms:
                return  # no more self-directed sessions; assigned compliance work may still happen
            if rng.random() * ONBOARDING_BOOST >= self._intensity(account, day_of_ms(candidate_ms)):
                continue
            # Keep the day the process chose, but start at a plausible hour of it.
            hour = bisect.bisect_right(SESSION_HOUR_CUMULATIVE, rng.random() * SESSION_HOUR_CUMULATIVE[-1])
            start_ms = candidate_ms - candidate_ms % DAY_MS + min(hour, 23) * HOUR_MS + rng.randrange(HOUR_MS)
            if start_ms <= after_ms:
                start_ms = after_ms + rng.randint(30 * MINUTE_MS, 3 * HOUR_MS)
            if start_ms > limit_ms:
                return
            heapq.heappush(self._sessions, (start_ms, self._next_sequence(), account, False))
            return

    def _close_learning(self, account: LmsAccount) -> None:
        """The owner has left (or the period ended): tally open mandatory courses and free the state."""
        if account.mandatory_open is None:
            return
        last_day = day_of_ms(self._owner_limit_ms(account) - 1)
        for attempt in account.mandatory_open.values():
            if attempt.due_day < last_day:
                self.stats["mandatory_overdue_open"] += 1
            else:
                self.stats["mandatory_open_not_due"] += 1
        account.mandatory_open = None
        account.optional_open = None
        account.actor_account_json = ""  # no more statements: free what only they needed

    # ----- sessions and statements --------------------------------------------------------------

    @staticmethod
    def _launches_needed(course: Course) -> int:
        return 1 + (course.difficulty >= 3) + (course.difficulty >= 5)

    def _new_uuid(self) -> str:
        return random_uuid4(self.rng)

    def _pick_optional_course(self, account: LmsAccount) -> Course | None:
        cumulative = self.optional_cumulative_by_level[account.job_level]
        for _ in range(4):
            index = bisect.bisect_right(cumulative, self.rng.random() * cumulative[-1])
            course = self.optional_courses[min(index, len(self.optional_courses) - 1)]
            if (
                not account.passed_optional_mask >> index & 1
                and course.course_id not in account.optional_open
            ):
                return course
        return None

    def _run_session(self, account: LmsAccount, start_ms: int) -> int:
        """One self-directed sitting: continue an open course or enrol in a new one; returns its end."""
        rng = self.rng
        self.stats["sessions"] += 1
        engagement = self._engagement_factor(account.employment, day_of_ms(start_ms))
        optional_open = account.optional_open
        now = start_ms
        if optional_open and (len(optional_open) >= MAX_OPEN_OPTIONAL_COURSES or rng.random() < 0.55):
            attempt = list(optional_open.values())[rng.randrange(len(optional_open))]
        else:
            course = self._pick_optional_course(account)
            if course is None:
                if not optional_open:
                    return now
                attempt = list(optional_open.values())[rng.randrange(len(optional_open))]
            else:
                attempt = CourseAttempt(course, self._new_uuid(), self._launches_needed(course), None)
                optional_open[course.course_id] = attempt
                self._emit(account, now, "registered", attempt, None)
                now += rng.randint(2_000, 120_000)
        return self._work_on(account, attempt, now, engagement, finish=False)

    def _work_on(
        self, account: LmsAccount, attempt: CourseAttempt, now: int, engagement: float, finish: bool
    ) -> int:
        """Launch a course, maybe take a quiz, and on the last launch complete it and take the test.

        `finish` (compliance sittings) always completes; otherwise disengaged learners drop out
        before finishing more often. Returns the time the work ended.
        """
        rng = self.rng
        course = attempt.course
        self._emit(account, now, "launched", attempt, None)
        minutes = rng.randint(5, 20) + 7 * course.difficulty
        attempt.minutes += minutes
        attempt.launches_done += 1
        if not finish and rng.random() < 0.35:
            self._emit(
                account,
                now + minutes * MINUTE_MS // 2,
                "scored",
                attempt,
                self._score_result(self._draw_score(account, course, engagement), None, False),
            )
        now += minutes * MINUTE_MS
        finishing = finish or attempt.launches_done >= attempt.launches_needed
        if finishing and (finish or rng.random() < 0.92 * (0.45 + 0.55 * engagement)):
            self._emit(
                account,
                now,
                "completed",
                attempt,
                f'{{"completion":true,"duration":"{iso_duration_minutes(attempt.minutes)}"}}',
            )
            now += rng.randint(1_000, 15_000)
            raw = self._draw_score(account, course, engagement)
            passed = raw >= PASS_MARK
            self._emit(
                account, now, "passed" if passed else "failed", attempt, self._score_result(raw, passed, True)
            )
            self.stats["course_completions"] += 1
            if passed:
                self._finish_attempt(account, attempt, day_of_ms(now))
            else:
                attempt.launches_done = attempt.launches_needed - 1  # one more sitting to retake the test
        return now

    def _finish_attempt(self, account: LmsAccount, attempt: CourseAttempt, day: int) -> None:
        course_id = attempt.course.course_id
        if attempt.due_day is not None:
            del account.mandatory_open[course_id]
            self.stats[
                "mandatory_completed_late" if day > attempt.due_day else "mandatory_completed_on_time"
            ] += 1
        else:
            del account.optional_open[course_id]
            account.passed_optional_mask |= 1 << self.optional_index[course_id]

    def _draw_score(self, account: LmsAccount, course: Course, engagement: float) -> int:
        mean = 0.84 + account.skill - 0.03 * (course.difficulty - 3) - 0.15 * (1.0 - engagement)
        return max(0, min(100, round(100 * self.rng.gauss(mean, 0.1))))

    @staticmethod
    def _score_result(raw: int, success: bool | None, completion: bool) -> str:
        score = f'{{"scaled":{raw / 100},"raw":{raw},"min":0,"max":100}}'
        if success is None:
            return f'{{"score":{score}}}'
        return (
            f'{{"score":{score},"success":{"true" if success else "false"},'
            f'"completion":{"true" if completion else "false"}}}'
        )

    def _context_json(self, attempt: CourseAttempt) -> str:
        common = f'"registration":"{attempt.registration}","platform":"Northwind LMS","language":"en-US"'
        if attempt.due_day is None:
            return f"{{{common}}}"
        # Mandatory assignments carry their due date, so overdue work can be computed from the LRS alone.
        return (
            f'{{{common},"extensions":{{"{EXTENSION_MANDATORY}":true,'
            f'"{EXTENSION_DUE_DATE}":"{iso_date(attempt.due_day)}"}}}}'
        )

    def _emit(
        self, account: LmsAccount, timestamp_ms: int, verb: str, attempt: CourseAttempt, result: str | None
    ) -> None:
        """Queue one learner statement, maybe with an mbox actor, a late `stored`, and a later void."""
        rng = self.rng
        statement_id = self._new_uuid()
        flags = 0
        if rng.random() < self.mbox_rate:
            actor = compact_json(
                {
                    "objectType": "Agent",
                    "name": f"{account.given_name} {account.family_name}",
                    "mbox": "mailto:" + account.email,
                }
            )
            flags |= OUTPUT_MBOX
        else:
            actor = account.actor_account_json
        if rng.random() < self.late_rate:
            # Offline app sync: the LRS learns about it days later.
            stored_ms = timestamp_ms + DAY_MS + int(rng.random() * 9 * DAY_MS)
            flags |= OUTPUT_LATE
        else:
            stored_ms = timestamp_ms + 50 + int(rng.random() * 30_000)
        voided = rng.random() < self.void_rate
        if voided:
            flags |= OUTPUT_VOIDED
        result_part = f',"result":{result}' if result is not None else ""
        line = (
            f'{{"id":"{statement_id}","actor":{actor},"verb":{VERB_JSON[verb]},'
            f'"object":{self.object_json[attempt.course.course_id]}{result_part},'
            f'"context":{self._context_json(attempt)},"timestamp":"{iso_instant(timestamp_ms)}",'
            f'"stored":"{iso_instant(stored_ms)}","version":"{XAPI_VERSION}"}}\n'
        )
        self.sink.push(stored_ms, line, flags)
        if account.employment is not None:
            self.stats["employee_learner_statements"] += 1
        if voided:
            # The LMS retracts a wrong record shortly after; the original stays in the LRS.
            voiding_timestamp_ms = timestamp_ms + rng.randint(5 * MINUTE_MS, 90 * MINUTE_MS)
            voiding_stored_ms = max(stored_ms, voiding_timestamp_ms) + rng.randint(50, 30_000)
            voiding_line = (
                f'{{"id":"{self._new_uuid()}","actor":{account.actor_account_json},"verb":{VERB_JSON["voided"]},'
                f'"object":{{"objectType":"StatementRef","id":"{statement_id}"}},'
                f'"timestamp":"{iso_instant(voiding_timestamp_ms)}","stored":"{iso_instant(voiding_stored_ms)}",'
                f'"version":"{XAPI_VERSION}"}}\n'
            )
            self.sink.push(voiding_stored_ms, voiding_line, OUTPUT_VOIDING)

    # ----- the end of the run -------------------------------------------------------------------

    def finish(self) -> None:
        """Close every account's learning so the mandatory-course tallies are complete."""
        for account in self.accounts:
            self._close_learning(account)
            self._deactivate_contractor_if_due(account)

    def accounts_in_directory_order(self) -> list[LmsAccount]:
        """All accounts, oldest first, as the SCIM directory lists them."""
        return sorted(self.accounts, key=lambda account: (account.created_ms, account.lms_user_id))

    @staticmethod
    def scim_user(account: LmsAccount) -> dict[str, object]:
        """The SCIM 2.0 User resource of an account in its final state."""
        resource: dict[str, object] = {
            "schemas": [SCIM_USER_SCHEMA],
            "id": account.lms_user_id,
            "userName": account.user_name,
        }
        if account.external_id:
            resource["externalId"] = account.external_id
        resource["name"] = {"givenName": account.given_name, "familyName": account.family_name}
        resource["emails"] = [{"value": account.email, "type": "work", "primary": True}]
        resource["active"] = account.deactivated_ms is None
        resource["meta"] = {
            "resourceType": "User",
            "created": iso_instant_seconds(account.created_ms),
            "lastModified": iso_instant_seconds(account.last_modified_ms),
        }
        return resource

    def users_jsonl_lines(self) -> Iterator[str]:
        """`users.jsonl` lines, one SCIM User per line."""
        for account in self.accounts_in_directory_order():
            yield json.dumps(self.scim_user(account), ensure_ascii=False, separators=(",", ":")) + "\n"
