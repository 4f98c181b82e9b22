import pytest

from brain_cnn.auth import (AUDITOR, CLINICIAN, CONFIGURE, ENGINEER, LOCAL, LOGIN, NO_ROLE, ROLES, SIGNED_IN, access,
                            idle_expired, is_loopback, roles_from_claims)


@pytest.mark.parametrize("address, loopback", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                               ("[::1]", True), ("127.0.0.2", True), ("0.0.0.0", False),
                                               ("", False), (None, False), ("10.1.2.3", False),
                                               ("myhost", False), ("::", False)])
def test_only_the_loopback_address_counts_as_this_machine(address, loopback):
    assert is_loopback(address) is loopback


def test_without_a_login_the_app_is_one_local_users_or_nobodys():
    local = access("127.0.0.1", False, {})
    assert local.mode == LOCAL and local.roles == frozenset(ROLES) and local.may_see("audit_log")
    assert access("0.0.0.0", False, {"is_logged_in": True, "groups": ["clinician"]}).mode == CONFIGURE
    assert access(None, False, {}).pages == []  # Streamlit's default listens on every interface


def test_with_a_login_each_role_sees_its_pages():
    assert access("0.0.0.0", True, {"is_logged_in": False}).mode == LOGIN
    assert access("127.0.0.1", True, {}).mode == LOGIN  # a login configured is asked for locally too
    clinician = access("0.0.0.0", True, {"is_logged_in": True, "email": "a@h.org", "groups": ["clinician"]})
    assert clinician.mode == SIGNED_IN and clinician.user == "a@h.org"
    assert clinician.pages == ["diagnose", "follow_up", "evaluation", "model_card"] and not clinician.may_stop_recording
    auditor = access("0.0.0.0", True, {"is_logged_in": True, "email": "b@h.org", "groups": "auditor"})
    assert auditor.pages == ["model_card", "audit_log"] and auditor.may_stop_recording
    engineer = access("0.0.0.0", True, {"is_logged_in": True, "sub": "c", "groups": [ENGINEER]})
    assert engineer.pages == ["evaluation", "model_card", "dataset"] and engineer.user == "c"
    nobody = access("0.0.0.0", True, {"is_logged_in": True, "email": "d@h.org", "groups": ["cardiology"]})
    assert nobody.mode == NO_ROLE and nobody.pages == []


def test_roles_come_from_the_configured_claim_and_mapping():
    settings = {"roles_claim": "roles", "roles": {CLINICIAN: ["radiology", "neuro-onc"], AUDITOR: "dpo"}}
    assert roles_from_claims({"roles": ["neuro-onc"]}, settings) == {CLINICIAN}
    assert roles_from_claims({"roles": "dpo, ml-engineer"}, settings) == {AUDITOR, ENGINEER}
    assert roles_from_claims({"roles": ["clinician"]}, settings) == frozenset()  # mapped: the plain name no longer
    assert roles_from_claims({"groups": ["clinician"]}, settings) == frozenset()  # another claim
    assert roles_from_claims({"groups": 3}) == frozenset()


def test_an_idle_session_expires():
    assert not idle_expired(None, 1e9)
    assert not idle_expired(1000.0, 1000.0 + 14 * 60)
    assert idle_expired(1000.0, 1000.0 + 16 * 60)
    assert idle_expired(1000.0, 1000.0 + 6 * 60, minutes=5)
