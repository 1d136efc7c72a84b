"""The configuration reference is generated from include/turnover_signals.yaml and its comments."""

from __future__ import annotations

from pathlib import Path

from turnover_signals import config_reference
from turnover_signals.config import load_config


def test_the_reference_page_is_the_one_generated_from_the_configuration_file():
    page = config_reference.REFERENCE_PAGE.read_text(encoding="utf-8")
    generated = config_reference.reference_markdown()
    assert config_reference.page_with_reference(page, generated) == page, (
        "run: PYTHONPATH=plugins python -m turnover_signals.config_reference"
    )


def test_every_setting_of_every_section_is_listed_with_its_default():
    listed = {setting.path: setting.default for setting in config_reference.settings()}
    config = load_config(use_variable=False)
    for section, values in config.items():
        for key, value in values.items():
            assert listed[(section, key)] == value, (section, key)


def test_comments_above_beside_and_continuing_a_key_describe_it(tmp_path: Path):
    config = tmp_path / "config.yaml"
    config.write_text(
        "# the file's header, not a setting's\n"
        "\n"
        "section:\n"
        "  # above the key\n"
        "  first: 1              # beside it\n"
        "                        # and continued\n"
        "  # landing_dir: /srv/x\n"
        "  second: [a, b]\n",
        encoding="utf-8",
    )
    described = {s.path: (s.default, s.description) for s in config_reference.settings(config)}
    assert described == {
        ("section", "first"): (1, "above the key beside it and continued"),
        ("section", "landing_dir"): (None, "(unset by default)"),
        ("section", "second"): (["a", "b"], ""),
    }
