"""Per-organisation keyed pseudonyms for patients.

Reports and logs must never carry a patient's name or PMS id. A keyed HMAC gives each patient a
stable label inside one organisation (so "the same patient" can be followed across runs) that
cannot be reversed or linked across organisations without the key.
"""

from __future__ import annotations

import hashlib
import hmac


def pseudonymise(key: bytes, patient_ref: str) -> str:
    if not key:
        raise ValueError("a pseudonym key is required")
    digest = hmac.new(key, patient_ref.encode("utf-8"), hashlib.sha256).hexdigest()
    return "pt_" + digest[:12]
