import pytest

from apps.operations.progress import EtaEstimator, parse_any, parser_for_task_type


@pytest.mark.parametrize("line, percent", [
    ("INFO:  45% (1.8 GiB of 4.0 GiB) in 10s, read: 184.3 MiB/s, write: 180.1 MiB/s", 45.0),
    ("drive-scsi0: transferred 1.2 GiB of 32.0 GiB (3.75%) in 12s", 3.75),
    ("2026-04-15 10:00:01 migration active, transferred 1.0 GiB of 4.0 GiB VM-state, 112.0 MiB/s", 25.0),
    ("migration status: active (transferred 250, remaining 750, total 1000)", 25.0),
    ("transferred 512.0 MiB of 1.0 GiB (50.00%)", 50.0),
    ("INFO: starting new backup job: vzdump 100 --mode snapshot", None),
    ("TASK OK", None),
])
def test_known_log_lines_give_progress(line, percent):
    assert parse_any(line) == percent


def test_parser_is_chosen_by_task_type():
    assert parser_for_task_type("vzdump")("INFO:  10% (1 GiB of 10 GiB) in 1s") == 10.0
    assert parser_for_task_type("qmigrate")("INFO:  10% (1 GiB of 10 GiB) in 1s") is None


def test_eta_follows_the_progress_rate():
    now = [100.0]
    eta = EtaEstimator(clock=lambda: now[0])
    assert eta.update(10) is None  # one point is no rate
    now[0] += 10
    assert eta.update(20) == 80  # 10 %/10 s -> 80 % left takes 80 s
    now[0] += 10
    assert eta.update(20) == 160  # stalled: the average rate halves, so the estimate doubles
