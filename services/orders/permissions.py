"""Who may do what in orders: one table of roles and actions (as workflow.py is for statuses), and the
branches each role works for. Every handler asks `require(principal, ACTION)`; the README's roles table is
this one.

- admin: everything, for every branch (the admin token is an admin too).
- manager: runs one branch: everything staff may, for that branch only, plus refunds of that branch's
  delivered orders (a manager settles complaints). The menu, couriers and users stay with admins: products
  are the chain's, and a courier or user change affects who can reach customers' addresses.
- staff: take orders, change them while they are prepared, move them along the workflow (but not refund);
  tied to a branch, for that branch only, else for every branch (as before managers existed).
Outside orders a manager, like staff tied to a branch, posts and reads the files and reports of their
branch only (ingest and reporting read the same user row: services/common/auth.py).
"""
from __future__ import annotations

from typing import Protocol

from services.common.errors import ApiError

READ_CATALOGUE = "read the menu and the couriers"
MANAGE_CATALOGUE = "add, change or retire products and couriers"
MANAGE_USERS = "manage users"
WORK_ORDERS = "take, change and move orders"
REFUND_ORDERS = "refund delivered orders"

ROLES = ("admin", "manager", "staff")
PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset({READ_CATALOGUE, MANAGE_CATALOGUE, MANAGE_USERS, WORK_ORDERS, REFUND_ORDERS}),
    "manager": frozenset({READ_CATALOGUE, WORK_ORDERS, REFUND_ORDERS}),
    "staff": frozenset({READ_CATALOGUE, WORK_ORDERS}),
}
# Roles that must be tied to one branch (the database checks it too: orders migration 0007) and roles whose
# branch, if any, is ignored: they work for every branch.
BRANCH_REQUIRED = frozenset({"manager"})
EVERY_BRANCH = frozenset({"admin"})
# Moving an order to these statuses takes more than WORK_ORDERS.
STATUS_ACTIONS = {"refunded": REFUND_ORDERS}


class HasRole(Protocol):
    role: str


def may(role: str, action: str) -> bool:
    return action in PERMISSIONS.get(role, frozenset())


def require(principal: HasRole, action: str) -> None:
    if not may(principal.role, action):
        allowed = [role for role in ROLES if may(role, action)]
        raise ApiError(403, "forbidden", f"only {' and '.join(r + 's' for r in allowed)} may {action}",
                       {"role": principal.role})


def status_action(target: str) -> str:
    """What moving an order to `target` takes."""
    return STATUS_ACTIONS.get(target, WORK_ORDERS)


def scope_branch_key(role: str, branch_key: str | None) -> str | None:
    """The one branch a user works for, or None for every branch."""
    return None if role in EVERY_BRANCH else branch_key
