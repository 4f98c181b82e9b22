"""End to end in a real headless Chromium: a clinician logs in through an OpenID Connect provider on 127.0.0.1,
assesses a scan, and the audit trail names them."""

import json
import os

import pytest

from conftest import models_dir_holding, encode, phantom
from test_browser import CHROMIUM, CHROMIUM_FLAGS, assert_no_exception, free_port, streamlit_server, upload

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
]


@pytest.fixture
def provider(monkeypatch):
    """A local OpenID Connect provider (oidc-provider-mock) that knows one clinician: (its URL, the user)."""
    mock = pytest.importorskip("oidc_provider_mock", reason="oidc-provider-mock is not installed")
    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")  # plain http, on this machine only
    user = "dr.a@hospital.example"
    with mock.run_server_in_thread(user_claims=[mock.User(sub=user, claims={"email": user,
                                                                            "groups": ["clinician"]})]) as server:
        yield f"http://localhost:{server.server_port}", user


def test_a_clinician_logs_in_assesses_a_scan_and_the_audit_line_names_them(tiny_model, tmp_path, provider):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    issuer, user = provider
    port = free_port()
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f"""
[auth]
redirect_uri = "http://localhost:{port}/oauth2callback"
cookie_secret = "{os.urandom(24).hex()}"
client_id = "brain-cnn"
client_secret = "not-a-real-secret"
server_metadata_url = "{issuer}/.well-known/openid-configuration"
client_kwargs = {{ scope = "openid email profile" }}
""")
    models = models_dir_holding(tiny_model, tmp_path / "models")
    audit = tmp_path / "audit.jsonl"
    with streamlit_server(models, audit, port=port, extra=["--secrets.files", str(secrets)]) as (url, _), \
            sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(90_000)
            page.goto(f"http://localhost:{port}")
            page.get_by_role("button", name="Log in").click()
            page.get_by_role("button", name=user).click()  # the provider's one-click login of a known user
            page.get_by_text("Upload a scan to see").wait_for()
            page.get_by_text(user).first.wait_for()  # the sidebar names who is using the app
            scan = tmp_path / "phantom-scan.png"
            scan.write_bytes(encode(phantom(256, lesion=True), "PNG"))
            upload(page, scan)
            page.locator("text=/Tumour suspected|No tumour seen|Cannot assess/").first.wait_for()
            assert_no_exception(page)
            assert page.get_by_text("Audit log").count() == 0  # not a clinician's page
        finally:
            browser.close()
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    assessed = [line for line in lines if line.get("user") == user]
    assert assessed and assessed[-1]["address"] == "localhost" and assessed[-1]["session"]
    from brain_cnn.reports.audit import verify

    assert verify(audit).intact
    assert "phantom-scan" not in audit.read_text()  # a case label, never the file name
