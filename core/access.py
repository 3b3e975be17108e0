"""Who may do what: the three roles, the permissions they hold, and the scopes of API
tokens. Pure: the front door (service/), the dashboard and the CLI all ask `may` and
`scope_allows`, so a permission is decided in one place.

- admin: everything, including users, tokens, servers, secrets, apply and delete.
- operator: run, pause and resume events, set and delete non-secret variables.
- viewer: read only.

A token carries scopes, not a role: `read` (runs and their records), `run:GLOB` (start
events whose name matches the glob, and read their runs). A token never does more than
its user's role allows: both are checked.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "Actor",
    "AuditAction",
    "Role",
    "Permission",
    "may",
    "check_scope",
    "scope_allows",
    "MAX_SCOPES",
]


class Role(str, Enum):
    admin = "admin"
    operator = "operator"
    viewer = "viewer"


class Permission(str, Enum):
    read = "read"  # events, runs, logs, variables' keys, servers
    run = "run"  # trigger an event (Run now, a token's run: scope)
    pause = "pause"  # pause and resume
    set_variable = "set-variable"  # set and delete non-secret variables
    manage = "manage"  # apply, delete, servers, secrets
    administer = "administer"  # users, tokens of others, the audit log


_GRANTS: dict[Role, frozenset[Permission]] = {
    Role.viewer: frozenset({Permission.read}),
    Role.operator: frozenset(
        {Permission.read, Permission.run, Permission.pause, Permission.set_variable}
    ),
    Role.admin: frozenset(Permission),
}


def may(role: Role | str, permission: Permission) -> bool:
    return permission in _GRANTS[Role(role)]


MAX_SCOPES = 20
_GLOB = re.compile(r"^[a-z0-9*?\[\]-]{1,100}$")


def check_scope(scope: str) -> str:
    """`scope` when it is `read` or `run:GLOB` (GLOB of event-name characters and * ? []);
    else ValueError naming it."""
    if scope == "read":
        return scope
    kind, _, glob = scope.partition(":")
    if kind == "run" and _GLOB.fullmatch(glob):
        return scope
    raise ValueError(
        f"scope {scope!r}: expected 'read' or 'run:EVENT' (EVENT a name or a glob such as "
        "'deploy-*')"
    )


def scope_allows(scopes: list[str], permission: Permission, event: str | None = None) -> bool:
    """Whether a token with `scopes` may do `permission` (to `event`, for run and read of
    one event's runs). `read` reads everything; `run:GLOB` runs and reads matching events."""
    if permission == Permission.read and "read" in scopes:
        return True
    if permission not in (Permission.run, Permission.read) or event is None:
        return False
    return any(
        s.startswith("run:") and fnmatch.fnmatchcase(event, s.removeprefix("run:")) for s in scopes
    )


@dataclass(frozen=True)
class Actor:
    """Whoever acts: a signed-in user, an API token (on behalf of its user), a webhook, or
    the `cronium` CLI on the server's machine (which holds the database: an admin)."""

    kind: str  # user | token | webhook | cli
    name: str  # the user's name, `token <id> of <user>`, the hook, the OS user
    source: str  # the caller's address, or "cli" / "dashboard"
    role: Role
    scopes: tuple[str, ...] | None = None  # a token's; None: the role alone decides

    def may(self, permission: Permission, event: str | None = None) -> bool:
        if not may(self.role, permission):
            return False
        return self.scopes is None or scope_allows(list(self.scopes), permission, event)


class AuditAction(str, Enum):
    """What the audit log records (service/audit.py), one name per kind of action."""

    trigger = "trigger"  # a run started: CLI, dashboard, token, webhook
    pause = "pause"
    resume = "resume"
    apply = "apply"  # detail: the created, changed and deleted events
    delete = "delete"
    variable_set = "variable.set"  # by key, never the value
    variable_delete = "variable.delete"
    server_add = "server.add"
    server_delete = "server.delete"
    user_add = "user.add"
    user_delete = "user.delete"
    user_role = "user.role"
    user_password = "user.password"
    token_create = "token.create"
    token_revoke = "token.revoke"
    sign_in = "sign-in"
    read = "read"  # a refused read (granted reads are not recorded)
