"""Who this browser session is, in the app's three modes (README, "Deploying"):

- local, with no configuration: everyone is the editor "local", for one person on a laptop;
- viewer-only, with `streamlit run app.py -- --viewer` or SASREC_VIEWER=1: everyone is a viewer;
- sign-in, with an [auth] section in .streamlit/secrets.toml: Streamlit's OpenID Connect
  sign-in (st.login, st.user). Editors are listed in the app's own [sasrec] section by e-mail
  (`editors`) or by a role claim (`editor_roles`, read from `roles_claim`, default "roles");
  everyone else who signs in is a viewer. A sign-in whose identity token has expired (its `exp`,
  which Streamlit does not check) must be renewed, and until then the session is not signed in.

The pages a session gets follow from this (app.py): a visitor who is not signed in sees the
welcome page alone, with a sign-in button.
"""

import os
import sys

import streamlit as st

from .. import access

LOCAL, VIEWER_ONLY, SIGN_IN = "local", "viewer-only", "sign-in"
VIEWER_FLAG, VIEWER_ENV, SLOTS_ENV = "--viewer", "SASREC_VIEWER", "SASREC_TRAINING_SLOTS"


def mode() -> str:
    if VIEWER_FLAG in sys.argv[1:] or os.environ.get(VIEWER_ENV, "").strip().lower() not in ("", "0", "false", "no"):
        return VIEWER_ONLY
    if st.secrets.load_if_toml_exists() and "auth" in st.secrets:
        return SIGN_IN
    return LOCAL


def settings() -> dict:
    """The app's own section of secrets.toml, [sasrec]: editors, editor_roles, roles_claim, training_slots."""
    if not st.secrets.load_if_toml_exists():
        return {}
    section = st.secrets.get("sasrec") or {}
    return section.to_dict() if hasattr(section, "to_dict") else dict(section)


def current_user() -> access.User | None:
    """This session's user; None when it has to sign in (sign-in mode: not signed in, or expired)."""
    current = mode()
    if current == LOCAL:
        return access.LOCAL
    if current == VIEWER_ONLY:
        return access.ANONYMOUS
    claims = st.user.to_dict()
    if not claims.get("is_logged_in") or access.expired(claims):
        return None
    return access.signed_in_user(claims, settings())


def acting_user() -> access.User:
    """Whom the workspace acts for in this session, at this moment: nobody who may change
    anything unless signed in as an editor."""
    return current_user() or access.ANONYMOUS


def sign_in_expired() -> bool:
    claims = st.user.to_dict() if mode() == SIGN_IN else {}
    return bool(claims.get("is_logged_in")) and access.expired(claims)


def training_slots() -> int:
    """Runs that train at once per device: SASREC_TRAINING_SLOTS, else training_slots in [sasrec], else 1."""
    value = os.environ.get(SLOTS_ENV) or settings().get("training_slots") or 1
    try:
        slots = int(value)
    except (TypeError, ValueError):
        slots = 0
    if slots < 1:
        raise ValueError(f"training slots must be a whole number of at least 1, not {value!r} "
                         f"({SLOTS_ENV}, or training_slots in the [sasrec] section of secrets.toml)")
    return slots


def sign_in_panel() -> None:
    """For a visitor who has to sign in: why, and the button."""
    if sign_in_expired():
        st.warning("Your sign-in has expired. Sign in again to go on.", icon=":material/lock_clock:")
    else:
        st.info("Sign in to look at the models; editors can also upload data and train.", icon=":material/login:")
    if st.button("Sign in", type="primary", icon=":material/login:", key="sign_in"):
        st.login()


def account() -> None:
    """In the sidebar: who is signed in, as what, and the way out; in viewer-only mode, that nothing can change."""
    current = mode()
    if current == VIEWER_ONLY:
        st.caption(":material/visibility: View only: nothing can be changed on this server.")
        return
    if current != SIGN_IN:
        return
    user = current_user()
    if user is None:
        return
    st.caption(f"Signed in as **{user.name}**, {user.role}")
    st.button("Sign out", key="sign_out", icon=":material/logout:", on_click=st.logout, type="tertiary")
