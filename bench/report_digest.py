"""Digests of the reconcile benchmark's report document, to prove a speed-up changed no byte.

Builds the organisation of `reconcile_scale.py` for each size, runs the timed work (reconcile,
report, its JSON as the store encodes it) once and prints the SHA-256 of the JSON, and of the
parts of the result the report leaves out (findings and operations as objects, the sharing
picture, the shared pairs).
Run it before and after a change and compare; `--write DIR` also keeps each JSON document for a
byte-by-byte `cmp`. Run:
    .venv/bin/python bench/report_digest.py [--patients 25000 200000 1000000] [--write DIR]
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from reconcile_scale import AS_OF, _reconcile_to_json, generate

from sharing import PmsSnapshot


def digests(patients: int) -> tuple[bytes, str, str]:
    """The report JSON and the SHA-256 digests of it and of the rest of the result."""
    access, practitioners, ptdirect = generate(patients)
    result, encoded = _reconcile_to_json(PmsSnapshot("cliniko", practitioners, access), ptdirect)
    rest = hashlib.sha256()
    for part in (result.findings, result.operations, result.picture, tuple(result.shared_pairs)):
        rest.update(repr(part).encode())
    return encoded, hashlib.sha256(encoded).hexdigest(), rest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, nargs="+", default=[25_000, 200_000, 1_000_000])
    parser.add_argument("--write", type=Path, help="also write each report's JSON here")
    args = parser.parse_args()
    print(f"as of {AS_OF}")
    for patients in args.patients:
        encoded, report, rest = digests(patients)
        print(f"{patients:>9,} patients: report {report[:16]} ({len(encoded):,} bytes), rest {rest[:16]}")
        if args.write:
            args.write.mkdir(parents=True, exist_ok=True)
            (args.write / f"report-{patients}.json").write_bytes(encoded)


if __name__ == "__main__":
    main()
