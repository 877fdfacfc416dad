"""Deterministic crash points, so tests can stop the broker between two steps of an operation.

FOR TESTS ONLY. In production this module does nothing: `crash_point` returns
at once unless the environment variable ``POSTGRES_SERVICE_BROKER_CRASH_AT``
names that exact point, and no deployment (BOSH job, CF manifest) sets it.

The backend calls `crash_point` between the steps of provision, bind, unbind
and deprovision. A test starts a broker with the variable set to one point,
sends a request, and the broker dies there as if the machine had lost power:
``os._exit`` runs no cleanup, no ``finally`` blocks, no rollback, and drops
every connection (so PostgreSQL releases the advisory locks, exactly as after
a real crash). A second broker must then finish or undo the work.
"""

from __future__ import annotations

import os

CRASH_AT_ENV = "POSTGRES_SERVICE_BROKER_CRASH_AT"
# 128 + SIGKILL, the status a shell reports for a killed process.
CRASH_EXIT_CODE = 137

# Every point the backend passes, in the order its operation passes them.
# Tests run one crash per name, so a point named here but never reached fails.
PROVISION_POINTS = (
    "provision.after_record",
    "provision.after_group_roles",
    "provision.after_create_database",
    "provision.after_prepare_database",
    "provision.before_mark_ready",
)
BIND_POINTS = (
    "bind.after_record",
    "bind.after_role",
)
UNBIND_POINTS = (
    "unbind.after_mark_deleting",
    "unbind.after_delete_record",
)
DEPROVISION_POINTS = (
    "deprovision.after_mark_deleting",
    "deprovision.after_drop_database",
    "deprovision.after_delete_record",
)
CRASH_POINTS = PROVISION_POINTS + BIND_POINTS + UNBIND_POINTS + DEPROVISION_POINTS


def crash_point(name: str) -> None:
    """Exit the process at once with status 137 if the test environment asks for `name`; else nothing."""
    if os.environ.get(CRASH_AT_ENV) != name:
        return
    # Raw write: no logging handlers, no buffers that a real crash would not flush either.
    os.write(2, f"fault injection: crashing at {name}\n".encode())
    os._exit(CRASH_EXIT_CODE)
