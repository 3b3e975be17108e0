"""Each trigger fires exactly when it should: every status x condition x trigger."""

from __future__ import annotations

import pytest

from cronium_prefect.record import RunStatus
from cronium_prefect.triggers import fires

S, F, T, P, C = (
    RunStatus.SUCCESS,
    RunStatus.FAILURE,
    RunStatus.TIMEOUT,
    RunStatus.PARTIAL,
    RunStatus.CANCELLED,
)
ALL_STATUSES = (S, F, T, P, C)

# trigger -> the (status, condition) pairs it fires for; every other pair must not fire.
EXPECTED = {
    "success": {(S, False), (S, True)},
    "failure": {(F, False), (F, True), (T, False), (T, True), (P, False), (P, True)},
    "always": {(s, c) for s in (S, F, T, P) for c in (False, True)},
    "condition": {(s, True) for s in (S, F, T, P)},
    "{all: [success, condition]}": {(S, True)},
    "{any: [success, condition]}": {(S, False), (S, True), (F, True), (T, True), (P, True)},
    "{all: [failure, condition]}": {(F, True), (T, True), (P, True)},
    "{any: [failure, {all: [success, condition]}]}": {
        (F, False),
        (F, True),
        (T, False),
        (T, True),
        (P, False),
        (P, True),
        (S, True),
    },
    "{all: [always]}": {(s, c) for s in (S, F, T, P) for c in (False, True)},
}
TRIGGERS = {
    "success": "success",
    "failure": "failure",
    "always": "always",
    "condition": "condition",
    "{all: [success, condition]}": {"all": ["success", "condition"]},
    "{any: [success, condition]}": {"any": ["success", "condition"]},
    "{all: [failure, condition]}": {"all": ["failure", "condition"]},
    "{any: [failure, {all: [success, condition]}]}": {
        "any": ["failure", {"all": ["success", "condition"]}]
    },
    "{all: [always]}": {"all": ["always"]},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("status", ALL_STATUSES, ids=lambda s: s.value)
@pytest.mark.parametrize("condition", (False, True), ids=("cond-false", "cond-true"))
def test_trigger_table(name, status, condition):
    expected = (status, condition) in EXPECTED[name]
    assert fires(TRIGGERS[name], status, condition) is expected
