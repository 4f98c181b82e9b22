"""Who may use the app, and which pages each role sees.

Three ways the app can be served (:func:`access`):

* **local**: no login is configured and the server listens on the loopback
  address only (``server.address = "127.0.0.1"``, the project's default): one
  user on this machine, every page, nothing to configure (``make app``);
* **configure**: no login is configured but the server listens on a network
  address (or on every interface): the app shows how to configure the login
  instead of itself, so that patient scans are never served to a network
  without one;
* **login**: an OpenID Connect provider is configured in
  ``.streamlit/secrets.toml`` (``[auth]``, Streamlit's own ``st.login``): a
  user must log in, and sees the pages of the roles the provider's ``groups``
  claim gives them (:data:`PAGES`); an idle session logs out.

Roles come from one claim of the ID token (``[brain_cnn] roles_claim``,
default ``groups``), mapped to the app's roles by ``[brain_cnn.roles]`` (for
example ``clinician = ["radiology", "neuro-onc"]``; by default a group named
as the role). docs/deployment.md has the whole setup.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["CLINICIAN", "AUDITOR", "ENGINEER", "ROLES", "PAGES", "LOCAL", "CONFIGURE", "LOGIN", "SIGNED_IN",
           "NO_ROLE", "Access", "access", "is_loopback", "roles_from_claims", "idle_expired", "IDLE_MINUTES"]

CLINICIAN, AUDITOR, ENGINEER = "clinician", "auditor", "ml-engineer"
ROLES = (CLINICIAN, AUDITOR, ENGINEER)
# Which roles see which page (the page's file name in app_pages/). Clinicians read scans and judge the model;
# auditors read the trail; ML engineers look at data sets and models, not at patients' scans.
PAGES: dict[str, frozenset[str]] = {
    "diagnose": frozenset({CLINICIAN}),
    "follow_up": frozenset({CLINICIAN}),
    "evaluation": frozenset({CLINICIAN, ENGINEER}),
    "model_card": frozenset({CLINICIAN, AUDITOR, ENGINEER}),
    "dataset": frozenset({ENGINEER}),
    "audit_log": frozenset({AUDITOR}),
}
LOCAL, CONFIGURE, LOGIN, SIGNED_IN, NO_ROLE = "local", "configure", "login", "signed in", "no role"
# Minutes without a rerun (a click, an upload) after which a logged-in session must log in again.
IDLE_MINUTES = 15.0


@dataclass(frozen=True)
class Access:
    """What this session may do: its ``mode`` (one of the five above), the user's name, their roles."""

    mode: str
    user: str | None = None
    roles: frozenset[str] = field(default_factory=frozenset)

    def may_see(self, page: str) -> bool:
        """Whether this session sees ``page`` (a key of :data:`PAGES`)."""
        return bool(self.roles & PAGES.get(page, frozenset()))

    @property
    def may_stop_recording(self) -> bool:
        """Switching the audit trail off is the auditors' right (and is itself recorded)."""
        return AUDITOR in self.roles

    @property
    def pages(self) -> list[str]:
        return [page for page in PAGES if self.may_see(page)]


def is_loopback(address: str | None) -> bool:
    """Whether a server bound to ``address`` is reachable from this machine only ("" or None: every interface)."""
    if not address:
        return False
    if address.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def roles_from_claims(claims: Mapping, settings: Mapping | None = None) -> frozenset[str]:
    """The app's roles of a user, from the claim named by ``settings["roles_claim"]`` (default ``groups``).

    The claim may be a list or a string of names separated by commas or spaces. ``settings["roles"]`` maps
    each role to the claim's values that grant it; a role it does not name is granted by a value equal to it.
    """
    settings = settings or {}
    value = claims.get(str(settings.get("roles_claim", "groups")))
    if isinstance(value, str):
        names = {part for part in value.replace(",", " ").split() if part}
    elif isinstance(value, (list, tuple, set, frozenset)):
        names = {str(part) for part in value}
    else:
        names = set()
    granting = settings.get("roles") or {}
    roles = set()
    for role in ROLES:
        allowed = granting.get(role, [role])
        allowed = [allowed] if isinstance(allowed, str) else list(allowed)
        if names & {str(name) for name in allowed}:
            roles.add(role)
    return frozenset(roles)


def access(server_address: str | None, auth_configured: bool, user: Mapping | None,
           settings: Mapping | None = None) -> Access:
    """This session's access (see the module's docstring).

    Args:
        server_address: Streamlit's ``server.address``.
        auth_configured: ``.streamlit/secrets.toml`` has an ``[auth]`` section.
        user: ``st.user``'s claims (``is_logged_in`` among them).
        settings: the ``[brain_cnn]`` section of the secrets (roles claim and mapping).
    """
    if not auth_configured:
        if is_loopback(server_address):
            return Access(LOCAL, "local user", frozenset(ROLES))
        return Access(CONFIGURE)
    user = user or {}
    if not user.get("is_logged_in"):
        return Access(LOGIN)
    name = str(user.get("email") or user.get("name") or user.get("sub") or "unnamed user")
    roles = roles_from_claims(user, settings)
    return Access(SIGNED_IN if roles else NO_ROLE, name, roles)


def idle_expired(last_seen: float | None, now: float, minutes: float = IDLE_MINUTES) -> bool:
    """Whether a session last seen at ``last_seen`` (seconds) has been idle too long at ``now``."""
    return last_seen is not None and now - last_seen > minutes * 60
