"""The pure core of ptsync: no I/O, no clock, no framework.

Give it what the PMS and PT Direct say and the organisation's policy; it returns findings and
the operations that would fix them. Same inputs, same output.
"""

from sharing.access import AccessLog, AccessLogBuilder, AccessSource, AccessStatus, PatientAccess
from sharing.apply import apply_operations, state_digest
from sharing.context import Baseline
from sharing.findings import Finding, FindingKind, Severity
from sharing.model import (
    AccessGroup,
    MasterAccount,
    MasterRecipients,
    Mode,
    PhysitrackClient,
    PmsLink,
    PmsLocation,
    PmsPractitioner,
    PmsSnapshot,
    Policy,
    PtDirectSnapshot,
    PtUser,
    SharingMember,
    SharingScope,
    UserStatus,
)
from sharing.operations import Operation, OpKind
from sharing.reconcile import Reconciliation, reconcile
from sharing.report import ProposalInfo, RunInfo, build_report

__all__ = [
    "AccessGroup",
    "AccessLog",
    "AccessLogBuilder",
    "AccessSource",
    "AccessStatus",
    "Baseline",
    "Finding",
    "FindingKind",
    "MasterAccount",
    "MasterRecipients",
    "Mode",
    "OpKind",
    "Operation",
    "PatientAccess",
    "PhysitrackClient",
    "PmsLink",
    "PmsLocation",
    "PmsPractitioner",
    "PmsSnapshot",
    "Policy",
    "ProposalInfo",
    "PtDirectSnapshot",
    "PtUser",
    "Reconciliation",
    "RunInfo",
    "Severity",
    "SharingMember",
    "SharingScope",
    "UserStatus",
    "apply_operations",
    "build_report",
    "reconcile",
    "state_digest",
]
