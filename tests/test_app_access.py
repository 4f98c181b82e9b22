"""Who sees what: the app's door, rendered with AppTest for each kind of user."""

import pytest

from conftest import app_test, models_dir_holding

pytestmark = pytest.mark.slow

AUTH = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
        "client_id": "brain-cnn", "client_secret": "s", "server_metadata_url": "http://127.0.0.1:1/.well-known/x"}


@pytest.fixture(scope="module")
def models_dir(tiny_model, tmp_path_factory):
    return models_dir_holding(tiny_model, tmp_path_factory.mktemp("access-models"))


@pytest.fixture
def app(models_dir, monkeypatch, tmp_path):
    at = app_test(models_dir, monkeypatch, tmp_path)
    at.secrets["auth"] = AUTH
    return at


def test_a_logged_out_user_sees_only_the_login(app):
    app.user = {"is_logged_in": False}
    at = app.run()
    assert not at.exception
    assert at.title[0].value == "brain-cnn" and [b.label for b in at.button] == ["Log in"]
    assert not at.file_uploader and not at.sidebar.selectbox  # no page, no model selector


def test_a_clinician_diagnoses_and_cannot_switch_recording_off(app):
    app.user = {"is_logged_in": True, "email": "dr.a@hospital.org", "groups": ["clinician"]}
    at = app.run()
    assert not at.exception
    assert at.title[0].value == "Diagnose" and at.file_uploader
    assert not at.sidebar.toggle  # recording off is the auditors' right
    assert any("dr.a@hospital.org" in c.value and "clinician" in c.value for c in at.sidebar.caption)
    assert "Log out" in [b.label for b in at.sidebar.button]
    with pytest.raises(ValueError, match="Could not find a navigation page"):  # not a clinician's page
        at.switch_page("app_pages/audit_log.py")


def test_an_auditor_reads_the_trail_and_may_switch_recording(app):
    app.user = {"is_logged_in": True, "email": "audit@hospital.org", "groups": ["auditor"]}
    at = app.run()
    assert not at.exception
    assert at.title[0].value == "Model card"  # the first of the auditor's pages
    assert at.sidebar.toggle
    at = at.switch_page("app_pages/audit_log.py").run()
    assert not at.exception and at.title[0].value == "Audit log"
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("app_pages/diagnose.py")


def test_an_account_without_a_role_is_told_so(app):
    app.user = {"is_logged_in": True, "email": "someone@hospital.org", "groups": ["cardiology"]}
    at = app.run()
    assert not at.exception
    assert any("no role" in w.value for w in at.warning) and not at.file_uploader


def test_served_to_a_network_without_a_login_it_shows_only_how_to_configure_one(models_dir, monkeypatch, tmp_path):
    from streamlit import config

    at = app_test(models_dir, monkeypatch, tmp_path)
    before = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    try:
        at = at.run()
    finally:
        config.set_option("server.address", before)
    assert not at.exception
    assert any("without a login" in e.value for e in at.error) and not at.file_uploader and not at.button


def test_locally_without_a_login_one_user_has_every_page(models_dir, monkeypatch, tmp_path):
    at = app_test(models_dir, monkeypatch, tmp_path).run()
    assert not at.exception and at.title[0].value == "Diagnose" and at.sidebar.toggle
    assert any("Local mode" in c.value for c in at.sidebar.caption)
