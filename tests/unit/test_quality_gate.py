from types import SimpleNamespace

from turnover_signals.quality.gate import RunIdentity, mask_value, summarize_expectation_result


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
    summary = summarize_expectation_result(_result("work_email", ["jane@northwind.example"]), ["work_email"])
    assert summary["observed"]["sample"] == [mask_value("jane@northwind.example")]
    assert "jane" not in str(summary)
    assert "batch_id" not in summary["kwargs"]


def test_derived_columns_of_pii_columns_are_masked_too():
    summary = summarize_expectation_result(_result("base_salary_parsed", [-5]), ["base_salary"])
    assert summary["observed"]["sample"] == [mask_value(-5)]


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
    summary = summarize_expectation_result(_result("lms_user_id", ["u-0001"]), pii)
    assert summary["observed"]["sample"] == [mask_value("u-0001")]
