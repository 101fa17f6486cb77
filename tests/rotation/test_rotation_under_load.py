"""The load proof, shortened: one rotation of each ring while shoppers use the whole platform
(local mode: every service a process on 127.0.0.1), and not one request may fail.

A JWT rotation waits for the longest token lifetime, and auth accepts no lifetime under 60 s from
its environment, so this test takes a little over a minute.
"""

from __future__ import annotations

import uuid

from bench.rotation_load import LoadConfig, run_load
from services.local.mongo_server import MongoServer


def test_one_rotation_of_each_ring_under_load_fails_no_request(
    mongo_server: MongoServer,
) -> None:
    report = run_load(
        LoadConfig(
            users=2,
            jwt_rotations=1,
            internal_rotations=1,
            token_ttl=60,
            margin=1.0,
            propagation_delay=5.0,
            warmup=2.0,
            tail=2.0,
            max_seconds=300.0,
            mongo=mongo_server,
            db_prefix="l" + uuid.uuid4().hex[:8] + "_",
        )
    )
    print(report.render())
    assert sum(report.failures.values()) == 0, report.failure_samples[:5]
    assert not report.service_logs, report.service_logs
    assert report.sent > 100
    assert [r.ring for r in report.rotations] == ["jwt", "internal"] or [
        r.ring for r in report.rotations
    ] == ["internal", "jwt"]
    assert report.old_keys_gone
    # A token signed just before the JWT rotation was accepted until (just before) it expired,
    # and refused after.
    assert report.probes and report.probes_ok
    assert report.cascades_done == len(report.deleted_users) > 0
    assert report.ok
