"""The figure functions, on hand-made records (the HA tests and the benchmarks share them)."""

from __future__ import annotations

import pytest

from tests.support.ha_writes import (
    Ack,
    acked_writes_lost,
    failover_write_unavailability_s,
    switchover_write_unavailability_s,
)


def ack(seq: int, sent: float, acked: float, server: str = "a") -> Ack:
    return Ack(seq=seq, sent=sent, acked=acked, server=server)


def test_failover_unavailability_counts_from_the_fault_to_the_first_commit_sent_after_it() -> None:
    acks = [ack(1, 0.0, 0.1), ack(2, 9.9, 10.05), ack(3, 12.0, 12.5, "b"), ack(4, 12.6, 12.7, "b")]
    # Seq 2 was sent before the fault at 10.0 and answered just after it: it does not count.
    assert failover_write_unavailability_s(10.0, acks) == pytest.approx(2.5)
    with pytest.raises(ValueError, match="no commit"):
        failover_write_unavailability_s(20.0, acks)


def test_switchover_unavailability_is_the_longest_gap_around_the_handover() -> None:
    acks = [ack(1, 0, 1.0), ack(2, 1, 2.0), ack(3, 2, 2.5), ack(4, 2.6, 6.0, "b"), ack(5, 6, 6.2, "b")]
    assert switchover_write_unavailability_s(acks, started=2.2, finished=7.0) == pytest.approx(3.5)
    # Gaps before the switchover began do not count.
    assert switchover_write_unavailability_s(acks[:2] + acks[3:], started=5.0, finished=7.0) == pytest.approx(
        4.0
    )


def test_acked_writes_lost_counts_missing_acknowledged_rows_only() -> None:
    assert acked_writes_lost([1, 2, 3], [1, 2, 3, 4]) == 0
    assert acked_writes_lost([1, 2, 3], [2]) == 2
