"""A small builder for clinics in tests: fakes, not mocks, of what the PMS and PT Direct say."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from sharing import (
    AccessGroup,
    AccessLog,
    AccessSource,
    AccessStatus,
    Baseline,
    MasterAccount,
    PatientAccess,
    PhysitrackClient,
    PmsLink,
    PmsLocation,
    PmsPractitioner,
    PmsSnapshot,
    Policy,
    PtDirectSnapshot,
    PtUser,
    SharingMember,
    UserStatus,
    reconcile,
)

AS_OF = date(2026, 11, 25)
KEY = b"clinic-test-key"


@dataclass
class Clinic:
    system: str = "cliniko"
    practitioners: list[PmsPractitioner] = field(default_factory=list)
    rows: list[PatientAccess] = field(default_factory=list)
    groups: list[AccessGroup] = field(default_factory=list)
    users: list[PtUser] = field(default_factory=list)
    members: list[SharingMember] = field(default_factory=list)
    master: MasterAccount | None = None
    clients: list[PhysitrackClient] | None = None
    pms_complete: bool = True
    ptdirect_complete: bool = True
    locations: list[PmsLocation] | None = None
    """The PMS's sites (a clinic group); None: a PMS that cannot tell locations apart."""
    _next_patient: int = 0

    def practitioner(
        self,
        pid: str,
        name: str,
        *,
        active: bool = True,
        user: bool = True,
        confirmed: bool = True,
        member: bool | None = None,
        share_patients: bool = True,
        email: str | None = None,
        recipient: bool = True,
        locations: tuple[str, ...] = (),
    ) -> str:
        """Add a PMS practitioner and (by default) their confirmed PT Direct user."""
        email = email or f"{name.split()[0].lower()}@clinic.example"
        self.practitioners.append(PmsPractitioner(pid, name, email, active, locations=locations))
        if user:
            status = UserStatus.CONFIRMED if confirmed else UserStatus.UNCONFIRMED
            self.users.append(PtUser(email, name, status, True, PmsLink(self.system, pid)))
        if member:
            self.members.append(SharingMember(email, True, share_patients))
        if recipient and user and self.master is not None:
            self.master = replace(self.master, recipients=(*self.master.recipients, email))
        return email

    def content_account(self, email: str = "content@clinic.example") -> None:
        self.users.append(PtUser(email, "Clinic Content", UserStatus.CONFIRMED, True, None))
        self.master = MasterAccount(email, self.master.recipients if self.master else ())

    def co_treat(
        self,
        *pids: str,
        patients: int = 3,
        days_ago: int = 10,
        status: AccessStatus = AccessStatus.ACTIVE,
        source: AccessSource = AccessSource.APPOINTMENT,
        location: str | None = None,
    ) -> list[str]:
        patient_ids = []
        for _ in range(patients):
            self._next_patient += 1
            patient_id = f"patient-{self._next_patient}"
            patient_ids.append(patient_id)
            for pid in pids:
                self.rows.append(
                    PatientAccess(pid, patient_id, source, AS_OF - timedelta(days=days_ago), status, location)
                )
        return patient_ids

    def pms(self) -> PmsSnapshot:
        return PmsSnapshot(
            self.system,
            tuple(self.practitioners),
            AccessLog.from_rows(self.rows),
            tuple(self.groups),
            self.pms_complete,
            tuple(self.locations) if self.locations is not None else None,
        )

    def ptdirect(self) -> PtDirectSnapshot:
        return PtDirectSnapshot(
            tuple(self.users),
            self.master,
            tuple(self.members),
            tuple(self.clients) if self.clients is not None else None,
            self.ptdirect_complete,
        )

    def reconcile(self, policy: Policy | None = None, ptdirect: PtDirectSnapshot | None = None):
        return reconcile(
            self.pms(),
            ptdirect or self.ptdirect(),
            policy or Policy(),
            as_of=AS_OF,
            pseudonym_key=KEY,
        )

    def reconcile_with(self, baseline: Baseline, policy: Policy | None = None):
        """Reconcile as a later run does: against the roster of the last accepted run."""
        return reconcile(
            self.pms(), self.ptdirect(), policy or Policy(), as_of=AS_OF, pseudonym_key=KEY, baseline=baseline
        )


def kinds(reconciliation) -> list[str]:
    return [finding.kind.value for finding in reconciliation.findings]


def of_kind(reconciliation, kind: str):
    return [finding for finding in reconciliation.findings if finding.kind.value == kind]


def ops(reconciliation) -> list[tuple[str, str]]:
    return [(op.op.value, op.email) for op in reconciliation.operations]
