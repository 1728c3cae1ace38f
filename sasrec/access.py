"""Who may change the workspace: two roles, and how a signed-in user's claims give theirs.

An *editor* may upload, save, rename and delete datasets and start, stop, resume, cancel and
delete runs; a *viewer* may only look. The check is made by `Workspace` (workspace.py), the one
place that changes the workspace, against the user it acts for; the pages hide what a viewer
cannot do, but hiding is not the check. Which user a browser session is, in each of the app's
modes, is sasrec/ui/signin.py's business; the rules here need no Streamlit.
"""

import time
from contextlib import contextmanager
from dataclasses import dataclass

from . import audit
from .rundir import RunError

EDITOR, VIEWER = "editor", "viewer"


@dataclass(frozen=True)
class User:
    name: str  # the e-mail address, or "local"
    role: str = VIEWER

    @property
    def can_edit(self) -> bool:
        return self.role == EDITOR


LOCAL = User("local", EDITOR)  # the local mode (no configuration) and the command line: one person, their own files
ANONYMOUS = User("anonymous", VIEWER)  # the viewer-only mode, and anyone not signed in

# What each change is, in a refusal's words.
ACTIONS = {"upload": "upload files", "save": "save datasets", "rename": "rename datasets", "delete": "delete",
           "start": "start training", "estimate": "time training", "stop": "stop runs", "resume": "resume runs",
           "cancel": "cancel queued runs", "audit": "read the audit log"}


class AccessDenied(RunError):
    """A viewer asked for a change only an editor may make; nothing was changed."""


def allowed(root, user: User, action: str, **target) -> User:
    """The user, if an editor. A viewer's attempt is written to the workspace's audit log and
    refused with AccessDenied."""
    if not user.can_edit:
        audit.record(root, user.name, "denied", action=action, **target)
        who = "You are not signed in as an editor" if user == ANONYMOUS else f"{user.name} is a viewer"
        raise AccessDenied(f"{who}: only an editor can {ACTIONS.get(action, action)}. Nothing was changed.")
    return user


@contextmanager
def change(root, user: User, action: str, **target):
    """A change of the workspace at `root` for `user`: refused before anything changes unless they
    are an editor (allowed), written to the audit log once done. The body may add to the yielded
    `target` what the log should say; a change that raises is not logged, nor one whose body sets
    target["unchanged"] (a second click on Stop, say)."""
    allowed(root, user, action, **target)
    yield target
    if not target.pop("unchanged", False):
        audit.record(root, user.name, action, **target)


def role_of(claims: dict, settings: dict) -> str:
    """The role of a signed-in user, from their identity token's claims and the app's settings (the
    [sasrec] section of secrets.toml): an editor if their e-mail is in `editors` (and the provider
    does not say it is unverified) or if a role in their `roles_claim` (default "roles"; a dotted
    path such as "realm_access.roles" reaches into nested claims) is in `editor_roles`; else a viewer."""
    email = str(claims.get("email") or "").strip().lower()
    editors = {str(e).strip().lower() for e in _as_list(settings.get("editors"))}
    if email and email in editors and claims.get("email_verified") is not False:
        return EDITOR
    value = claims
    for part in str(settings.get("roles_claim") or "roles").split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if {str(r) for r in _as_list(value)} & {str(r) for r in _as_list(settings.get("editor_roles"))}:
        return EDITOR
    return VIEWER


def expired(claims: dict, now: float | None = None) -> bool:
    """Whether the identity token has expired. Streamlit keeps the user signed in by its own cookie
    for 30 days and does not look at the token's `exp`; here it counts. An `exp` that is not a
    number counts as expired."""
    exp = claims.get("exp")
    if exp is None:
        return False
    try:
        return float(exp) <= (time.time() if now is None else now)
    except (TypeError, ValueError):
        return True


def signed_in_user(claims: dict, settings: dict) -> User:
    return User(str(claims.get("email") or claims.get("sub") or "unknown"), role_of(claims, settings))


def _as_list(value) -> list:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple, set)) else [value]
