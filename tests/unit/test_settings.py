"""Settings come from sentinel.toml, with SENTINEL_* variables over it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from sentinel.settings import load_settings


def test_defaults_keep_all_state_in_the_project_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SENTINEL_HOME", str(tmp_path))
    settings = load_settings()
    assert settings.home == tmp_path.resolve()
    assert settings.ledger_url == f"sqlite:///{tmp_path.resolve() / 'sentinel.db'}"
    assert settings.mlflow_tracking_uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert settings.incoming_dir == tmp_path.resolve() / "data" / "incoming"


def test_toml_then_environment(tmp_path, monkeypatch):
    (tmp_path / "sentinel.toml").write_text('registered_model = "from-toml"\n\n[gate]\nmargin = 0.02\n\n[drift]\nz = 3.0\n')
    monkeypatch.setenv("SENTINEL_HOME", str(tmp_path))
    monkeypatch.setenv("SENTINEL_DRIFT__Z", "5")
    settings = load_settings()
    assert settings.registered_model == "from-toml"
    assert settings.gate.margin == 0.02
    assert settings.drift.z == 5.0


def test_a_typo_is_an_error_not_silently_ignored(tmp_path, monkeypatch):
    (tmp_path / "sentinel.toml").write_text("[gate]\nmargn = 0.02\n")
    monkeypatch.setenv("SENTINEL_HOME", str(tmp_path))
    with pytest.raises(ValidationError):
        load_settings()


def test_a_password_in_a_url_is_never_printed():
    from sentinel.settings import redacted

    assert redacted("postgresql+psycopg://sentinel:s3cret@db:5432/ledger") == "postgresql+psycopg://sentinel:***@db:5432/ledger"
    assert redacted("http://user:token@mlflow:5000") == "http://user:***@mlflow:5000"
    assert redacted("sqlite:////srv/sentinel/sentinel.db") == "sqlite:////srv/sentinel/sentinel.db"


def test_the_old_services_group_still_works_for_one_release_and_says_its_new_name(tmp_path, monkeypatch):
    from sentinel.settings import SettingsDeprecation

    (tmp_path / "sentinel.toml").write_text("[services]\nprefect_port = 4300\nreport_cron = '0 7 * * *'\n")
    monkeypatch.setenv("SENTINEL_HOME", str(tmp_path))
    monkeypatch.setenv("SENTINEL_SERVICES__MLFLOW_PORT", "5300")
    monkeypatch.setenv("SENTINEL_UP__REPORT_CRON", "0 8 * * *")  # the new name wins over the old
    with pytest.warns(SettingsDeprecation, match=r"now `up`.*SENTINEL_UP__"):
        settings = load_settings()
    assert (settings.up.prefect_port, settings.up.mlflow_port, settings.up.report_cron) == (4300, 5300, "0 8 * * *")
    assert "services" not in settings.model_dump()  # never handed on to child processes under the old name


def test_a_typo_under_the_old_group_name_is_still_an_error(tmp_path, monkeypatch):
    (tmp_path / "sentinel.toml").write_text("[services]\nprefect_prot = 4300\n")
    monkeypatch.setenv("SENTINEL_HOME", str(tmp_path))
    with pytest.raises(ValidationError):
        load_settings()


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("127.0.0.2", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
        ("sentinel.example.org", False),
    ],
)
def test_servers_bind_beyond_loopback_only_when_a_person_acknowledges_they_have_no_authentication(host, allowed):
    from sentinel.settings import UpPolicy

    problem = UpPolicy(host=host).exposure_problem()
    assert (problem is None) == allowed
    assert allowed or "SENTINEL_UP__EXPOSE_UNAUTHENTICATED" in problem
    assert UpPolicy(host=host, expose_unauthenticated=True).exposure_problem() is None


def test_sentinel_up_on_a_public_interface_is_refused_in_one_line_before_anything_starts(tmp_path):
    env = os.environ | {"SENTINEL_HOME": str(tmp_path), "SENTINEL_UP__HOST": "0.0.0.0"}
    ran = subprocess.run([sys.executable, "-m", "sentinel.cli", "up"], env=env, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 1
    assert ran.stderr.strip().startswith("error: up.host is 0.0.0.0") and len(ran.stderr.strip().splitlines()) == 1
    assert not (tmp_path / ".prefect").exists() and not (tmp_path / "mlflow.db").exists()
