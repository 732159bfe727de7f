"""Least privilege, proven: every AWS call the suite made, held to each role's policy.

``make test`` runs the suite with MAILPOOL_AWS_RECORD set, so that every mailpool client (in
the tests' own process and in the mailpool processes they start) records what it calls, as
whom; then it runs this test alone (``-m privilege``) on the record.
"""

import os
import pathlib
from collections import defaultdict

import pytest

from mailpool import iam


@pytest.mark.privilege
def test_each_process_is_granted_exactly_what_it_was_seen_to_call() -> None:
    path = os.environ.get("MAILPOOL_AWS_RECORD")
    if not path or not pathlib.Path(path).exists():
        pytest.skip("no record of AWS calls: `make test` makes one (MAILPOOL_AWS_RECORD)")
    seen: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for line in pathlib.Path(path).read_text().splitlines():
        role, action, kind = line.split("\t")
        seen[role].add((action, kind))
    for role, granted in iam.PERMISSIONS.items():
        missing = seen[role] - granted
        unused = granted - seen[role]
        assert not missing, f"{role} calls what its policy does not allow: {sorted(missing)}"
        assert not unused, f"{role}'s policy allows what it never calls: {sorted(unused)}"
    assert set(seen) <= set(iam.PERMISSIONS), f"calls by unknown roles: {set(seen)}"
