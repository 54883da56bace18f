"""Attaching uploaded keys to persons (issue 13, API.md section 3).

Layout: ``settings`` (``AttachSettings``: rate, per-person limit, attach deadline), ``models`` (``Thumb``,
``PersonRef``, ``PersonState``, ``Refused``), ``api`` (``PersonsApi``: the persons calls on an open
``ApiClient``), ``planner`` (pure: rows and known persons -> the create/add calls and the refused rows).
The runner wires them: journal an intent before each create/add, reconcile on resume.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.lazy import exports

if TYPE_CHECKING:
    from pipeline.attach.api import PersonsApi
    from pipeline.attach.models import MAX_PER_CALL, PersonRef, PersonState, Refused, Thumb
    from pipeline.attach.planner import (
        AttachRow,
        PersonInfo,
        Plan,
        PlannedCall,
        PlannedThumb,
        PrimaryConflict,
        RowRefusal,
        Target,
        plan,
        validate,
    )
    from pipeline.attach.settings import AttachSettings

__all__ = [
    "MAX_PER_CALL",
    "AttachRow",
    "AttachSettings",
    "PersonInfo",
    "PersonRef",
    "PersonState",
    "PersonsApi",
    "Plan",
    "PlannedCall",
    "PlannedThumb",
    "PrimaryConflict",
    "Refused",
    "RowRefusal",
    "Target",
    "Thumb",
    "plan",
    "validate",
]

__getattr__, __dir__ = exports(
    __name__,
    {
        "PersonsApi": "pipeline.attach.api",
        "MAX_PER_CALL": "pipeline.attach.models",
        "PersonRef": "pipeline.attach.models",
        "PersonState": "pipeline.attach.models",
        "Refused": "pipeline.attach.models",
        "Thumb": "pipeline.attach.models",
        "AttachRow": "pipeline.attach.planner",
        "PersonInfo": "pipeline.attach.planner",
        "Plan": "pipeline.attach.planner",
        "PlannedCall": "pipeline.attach.planner",
        "PlannedThumb": "pipeline.attach.planner",
        "PrimaryConflict": "pipeline.attach.planner",
        "RowRefusal": "pipeline.attach.planner",
        "Target": "pipeline.attach.planner",
        "plan": "pipeline.attach.planner",
        "validate": "pipeline.attach.planner",
        "AttachSettings": "pipeline.attach.settings",
    },
    globals(),
)
