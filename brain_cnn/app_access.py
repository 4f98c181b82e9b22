"""The app's door: the login, the idle timeout and the pages a session may open (Streamlit glue over
:mod:`brain_cnn.auth`, which holds the rules)."""

from __future__ import annotations

import time
from typing import Any

import streamlit as st

from brain_cnn.auth import CONFIGURE, IDLE_MINUTES, LOCAL, LOGIN, NO_ROLE, Access, access, idle_expired

__all__ = ["current_access", "admit", "app_settings", "sidebar_identity"]

LAST_SEEN = "_brain_cnn_last_seen"


def _secrets_section(name: str) -> dict[str, Any]:
    """A section of ``.streamlit/secrets.toml`` as a dict; empty when there is no such file or section."""
    try:
        section = st.secrets.get(name)
    except Exception:  # noqa: BLE001  (no secrets file: Streamlit raises its own not-found error)
        return {}
    return dict(section) if section else {}


def app_settings() -> dict[str, Any]:
    """The ``[brain_cnn]`` section of the secrets: roles claim and mapping, idle minutes, audit key."""
    settings = _secrets_section("brain_cnn")
    if isinstance(settings.get("roles"), dict) or settings.get("roles") is None:
        return settings
    return {**settings, "roles": dict(settings["roles"])}


def current_access() -> Access:
    """This session's access, from the server's address, the secrets and ``st.user``."""
    try:
        user = st.user.to_dict()
    except Exception:  # noqa: BLE001  (no user information outside a session)
        user = {}
    return access(st.get_option("server.address"), bool(_secrets_section("auth")), user, app_settings())


def admit() -> Access:
    """Render the door for a session that may not use the app yet (and stop the script), log an idle session
    out; otherwise return its access."""
    granted = current_access()
    if granted.mode == CONFIGURE:
        st.title("brain-cnn")
        st.error("This app is served to the network without a login, so it shows nothing. Configure the login "
                 "in `.streamlit/secrets.toml` (`[auth]`, your hospital's OpenID Connect provider) and the roles "
                 "(`[brain_cnn.roles]`), or serve it to this machine only (`server.address = \"127.0.0.1\"`, "
                 "the default of `make app`). The deployment guide is docs/deployment.md.")
        st.stop()
    if granted.mode == LOGIN:
        st.session_state.pop(LAST_SEEN, None)
        st.title("brain-cnn")
        st.write("Decision support for brain MRI. Log in with your hospital account to continue.")
        provider = app_settings().get("provider")
        st.button("Log in", type="primary", on_click=st.login, args=(provider,) if provider else ())
        st.stop()
    if granted.mode == NO_ROLE:
        st.title("brain-cnn")
        st.warning(f"You are logged in as {granted.user}, but your account has no role in this app (clinician, "
                   "auditor or ml-engineer). Ask the app's administrator for one.")
        st.button("Log out", on_click=st.logout)
        st.stop()
    if granted.mode != LOCAL:
        now = time.time()
        minutes = float(app_settings().get("idle_minutes", IDLE_MINUTES))
        if idle_expired(st.session_state.get(LAST_SEEN), now, minutes):
            st.session_state.pop(LAST_SEEN, None)
            st.logout()  # the next run asks for the login again
            st.stop()
        st.session_state[LAST_SEEN] = now
    return granted


def sidebar_identity(granted: Access) -> None:
    """Who is using the app, in the sidebar, with the way out."""
    if granted.mode == LOCAL:
        st.sidebar.caption("Local mode: served to this machine only, one user, no login.")
        return
    st.sidebar.caption(f"{granted.user} · {', '.join(sorted(granted.roles))}")
    st.sidebar.button("Log out", on_click=st.logout, key="log_out")
