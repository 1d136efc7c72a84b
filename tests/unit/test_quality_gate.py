import hashlib
import json
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from turnover_signals.governance.pseudonyms import pii_mask_key, pii_mask_key_from_connection
from turnover_signals.quality import gate
from turnover_signals.quality.gate import (
    PII_WITHHELD,
    RunIdentity,
    mask_validation_result,
    mask_value,
    summarize_expectation_result,
)

MASK_KEY = pii_mask_key("test-pseudonym-key-0123456789abcdef")
OTHER_MASK_KEY = pii_mask_key("rotated-pseudonym-key-fedcba9876543210")


def _result(column, unexpected, success=False):
    config = SimpleNamespace(
        type="expect_column_values_to_be_unique", kwargs={"column": column, "batch_id": "x"}, description=None
    )
    return SimpleNamespace(
        expectation_config=config,
        success=success,
        result={
            "unexpected_count": len(unexpected),
            "partial_unexpected_list": unexpected,
            "element_count": 9,
        },
        exception_info=None,
    )


def test_pii_samples_are_masked_and_stable():
    summary = summarize_expectation_result(
        _result("work_email", ["jane@northwind.example", "jane@northwind.example"]), ["work_email"], MASK_KEY
    )
    mask = mask_value("jane@northwind.example", MASK_KEY)
    assert summary["observed"]["sample"] == [mask, mask]  # a repeat is still visible
    assert "jane" not in str(summary)
    assert "batch_id" not in summary["kwargs"]


def test_derived_columns_of_pii_columns_are_masked_too():
    summary = summarize_expectation_result(_result("base_salary_parsed", [-5]), ["base_salary"], MASK_KEY)
    assert summary["observed"]["sample"] == [mask_value(-5, MASK_KEY)]


def test_the_mask_of_a_salary_is_keyed_not_a_hash_anyone_can_compute():
    # An unkeyed sha256 of a salary is found by hashing every plausible salary: the mask needs the key.
    mask = mask_value("131000.50", MASK_KEY)
    assert mask.startswith("pii:") and len(mask) == len("pii:") + 10
    assert mask != "pii:" + hashlib.sha256(b"131000.50").hexdigest()[:10]
    assert mask == mask_value("131000.50", MASK_KEY)
    assert mask != mask_value("131000.50", OTHER_MASK_KEY)


def test_without_a_mask_key_pii_sample_values_are_withheld():
    summary = summarize_expectation_result(_result("base_salary", ["131000.50", "-5"]), ["base_salary"])
    assert summary["observed"]["sample"] == [PII_WITHHELD, PII_WITHHELD]
    assert summary["observed"]["unexpected_count"] == 2  # the counts an auditor needs stay
    assert "131000" not in json.dumps(summary)


def test_the_data_docs_copy_of_a_result_is_masked_with_the_same_key():
    result = _result("employee_id", ["E1", "E1"])
    result.result["partial_unexpected_counts"] = [{"value": "E1", "count": 2}]
    masked = mask_validation_result(SimpleNamespace(results=[result]), ["employee_id"], MASK_KEY)
    item = masked.results[0].result
    assert item["partial_unexpected_list"] == [mask_value("E1", MASK_KEY)] * 2
    assert item["partial_unexpected_counts"] == [{"value": mask_value("E1", MASK_KEY), "count": 2}]
    no_key = mask_validation_result(
        SimpleNamespace(results=[_result("employee_id", ["E1"])]), ["employee_id"]
    )
    assert no_key.results[0].result["partial_unexpected_list"] == [PII_WITHHELD]


def test_the_mask_key_is_not_the_pseudonym_key_itself():
    # a masked employee_key in a quality report must never equal its analytics pseudonym
    import hmac

    key = "test-pseudonym-key-0123456789abcdef"
    pseudonym = hmac.new(key.encode(), b"42", hashlib.sha256).hexdigest()
    assert mask_value(42, pii_mask_key(key)) != "pii:" + pseudonym[:10]


def test_the_mask_key_comes_from_the_pseudonym_connection(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_ANALYTICS_PSEUDONYM",
        json.dumps({"conn_type": "generic", "password": "test-pseudonym-key-0123456789abcdef"}),
    )
    assert pii_mask_key_from_connection() == MASK_KEY
    assert gate.resolve_pii_mask_key() == MASK_KEY


@pytest.mark.parametrize("password", [None, "short"])
def test_no_connection_or_an_unusable_key_withholds_the_values(monkeypatch, password):
    if password is None:
        monkeypatch.delenv("AIRFLOW_CONN_ANALYTICS_PSEUDONYM", raising=False)
    else:
        monkeypatch.setenv(
            "AIRFLOW_CONN_ANALYTICS_PSEUDONYM", json.dumps({"conn_type": "generic", "password": password})
        )
    assert pii_mask_key_from_connection() is None
    assert mask_value("131000.50", gate.resolve_pii_mask_key()) == PII_WITHHELD


def test_non_pii_samples_are_kept_for_the_auditor():
    summary = summarize_expectation_result(_result("hire_date_unparseable", ["2026-02-31"]), ["work_email"])
    assert summary["observed"]["sample"] == ["2026-02-31"]


def test_run_identity_from_an_airflow_context():
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="t", map_index=-1, try_number=2)
    assert RunIdentity.from_context({"ti": ti}) == RunIdentity("d", "r", "t", None, 2)
    assert RunIdentity.from_context(None) == RunIdentity()


def test_identifiers_of_people_are_pii_in_the_configuration():
    # pseudonymous ids still name one person: only analytics' pseudonyms are meant to leave the warehouse
    from turnover_signals.config import load_config

    pii = set(load_config(use_variable=False)["quality"]["pii_columns"])
    identifiers = {
        "employee_id",
        "hris_employee_id",
        "manager_id",
        "employee_key",
        "sso_guid",
        "lms_user_id",
        "user_name",
        "external_id",
        "learner_identifier",
    }
    assert identifiers <= pii, identifiers - pii
    summary = summarize_expectation_result(_result("lms_user_id", ["u-0001"]), pii, MASK_KEY)
    assert summary["observed"]["sample"] == [mask_value("u-0001", MASK_KEY)]


def superseded_outcome(page):
    return gate.ValidationOutcome(
        "v-1", "lms_statement_batch", "1", "lms", "batch", True, {}, [], datetime.now(UTC), page.as_uri()
    )


def test_a_superseded_data_docs_page_is_deleted(tmp_path):
    page = tmp_path / "page.html"
    page.write_text("<html/>")
    gate.discard_data_docs_page({}, superseded_outcome(page))
    assert not page.exists()


def test_a_superseded_page_that_cannot_be_deleted_is_left_with_a_warning(tmp_path, caplog):
    page = tmp_path / "page.html"
    page.mkdir()  # what the storage refuses to delete as an object
    with caplog.at_level("WARNING", logger="turnover_signals.quality.gate"):
        gate.discard_data_docs_page({}, superseded_outcome(page))
    assert page.exists() and "could not delete the superseded Data Docs page of validation v-1" in caplog.text
