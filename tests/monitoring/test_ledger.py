"""The run ledger: duplicate runs refused and recorded, missed slots recorded, cache warming."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from monitoring.ledger.runs import run_claim, runs_audit
from monitoring.models import TaskRun

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 5, 4, 12, 0, 0, tzinfo=UTC)


def every(seconds: int, name: str = "job: every") -> PeriodicTask:
    interval, _ = IntervalSchedule.objects.get_or_create(every=seconds, period=IntervalSchedule.SECONDS)
    return PeriodicTask.objects.create(name=name, task="monitoring.beat_heartbeat", interval=interval)


def each_minute(name: str = "job: cron") -> PeriodicTask:
    cron, _ = CrontabSchedule.objects.get_or_create(minute="*", hour="*", day_of_week="*", day_of_month="*",
                                                    month_of_year="*", timezone="UTC")  # fmt: skip
    return PeriodicTask.objects.create(name=name, task="monitoring.beat_heartbeat", crontab=cron)


def as_sent_by_beat(task: Any, task_id: str, job: str, *, is_eager: bool = False, **headers: object) -> None:
    """Run ``task`` as a worker runs a message beat sent for ``job``."""
    task.push_request(id=task_id, periodic_task_name=job, is_eager=is_eager, **headers)
    try:
        task()
    finally:
        task.pop_request()


def test_two_beats_sending_one_slot_run_it_once():
    every(60)
    claims: list[object] = []
    barrier = threading.Barrier(3)

    def claim(n: int) -> None:
        from django.db import connection

        barrier.wait()
        claims.append(run_claim(job="job: every", task="t", task_id=f"id-{n}", now=T0 + timedelta(seconds=n)))
        connection.close()

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(1 for c in claims if c is not None) == 1
    assert TaskRun.objects.filter(status="running").count() == 1
    assert TaskRun.objects.filter(status="duplicate").count() == 2
    # the next slot runs
    assert run_claim(job="job: every", task="t", task_id="next", now=T0 + timedelta(seconds=61)) is not None


def test_a_beat_message_runs_through_the_ledger():
    from monitoring.health.tasks import beat_heartbeat_task

    every(30, name="monitoring: beat heartbeat (test)")
    for task_id in ("first", "again"):  # the second is a redelivery of the same slot
        as_sent_by_beat(beat_heartbeat_task, task_id, "monitoring: beat heartbeat (test)")
    runs = {r.task_id: r for r in TaskRun.objects.all()}
    assert runs["first"].status == "succeeded" and runs["first"].duration_ms is not None
    assert runs["again"].status == "duplicate"


def test_missed_slots_are_recorded_for_crontab_and_interval_jobs(settings):
    settings.OPSITE_TASK_MISSED_GRACE_S = 90
    PeriodicTask.objects.update(enabled=False)  # only this test's jobs
    each_minute()
    every(60)
    for job in ("job: cron", "job: every"):
        run_claim(job=job, task="t", task_id=f"{job}-0", now=T0)
    run_claim(job="job: every", task="t", task_id="every-late", now=T0 + timedelta(minutes=6))
    written = runs_audit(now=T0 + timedelta(minutes=6, seconds=30))
    missed_cron = sorted(
        TaskRun.objects.filter(job="job: cron", status="missed").values_list("scheduled_for", flat=True)
    )
    assert missed_cron == [T0 + timedelta(minutes=m) for m in range(1, 6)]  # 12:06 is still within the grace
    missed_every = sorted(
        TaskRun.objects.filter(job="job: every", status="missed").values_list("scheduled_for", flat=True)
    )
    # a gap of more than two intervals: every slot in it but the last, which may be drift
    assert missed_every == [T0 + timedelta(minutes=m) for m in range(1, 5)]
    assert written == 5 + 4
    assert runs_audit(now=T0 + timedelta(minutes=6, seconds=30)) == 0  # recorded once


def test_warming_fills_what_the_dashboard_reads_and_new_data_invalidates_it(make_restaurant):
    from monitoring.dashboard.figures import SERIES_CACHE, cache_stats, series_json
    from monitoring.dashboard.selectors import ORDERS_CACHE, orders_today
    from monitoring.dashboard.warming import cache_warm
    from realtime.services import order_event_ingest

    took = cache_warm()
    assert set(took) >= {"series 1h", "series 90d", "tables", "orders today"}
    before = cache_stats()
    series_json(range_key="90d")  # its key changes every six hours, not every minute: no race with the clock
    first = orders_today()
    after = cache_stats()
    assert after[SERIES_CACHE]["hits"] == before[SERIES_CACHE]["hits"] + 1
    assert after[ORDERS_CACHE]["hits"] == before[ORDERS_CACHE]["hits"] + 1
    restaurant = make_restaurant()
    from realtime.validation import clean_events

    events, _ = clean_events([{"type": "order.created", "order_id": "x", "total_amount": "5", "items_count": 1}],
                             max_batch=10)  # fmt: skip
    order_event_ingest(restaurant=restaurant, events=events)
    fresh = orders_today()
    assert fresh["orders"] == first["orders"] + 1  # a new event made a new key
    assert cache_stats()[ORDERS_CACHE]["misses"] == after[ORDERS_CACHE]["misses"] + 1


def test_warm_cache_command(capsys):
    call_command("warm_cache")
    assert capsys.readouterr().out.startswith("warmed 8 entries: series 1h")


def test_a_restarted_beat_makes_no_duplicate_and_no_missed_run(settings):
    """Beat ran 12:00, stopped, and started again at 12:03:40: its late run belongs to the
    12:03 tick, and the regular runs at 12:04 and 12:05, 20 s after it, run as themselves."""
    settings.OPSITE_TASK_MISSED_GRACE_S = 90
    PeriodicTask.objects.update(enabled=False)
    each_minute()
    every(60)
    sends = [T0, T0 + timedelta(minutes=3, seconds=40), T0 + timedelta(minutes=4), T0 + timedelta(minutes=5)]
    for n, sent in enumerate(sends):
        for job in ("job: cron", "job: every"):
            # delivered to a worker a little later than sent, as through a real queue
            run = run_claim(job=job, task="t", task_id=f"{job}-{n}", sent_at=sent, now=sent + timedelta(seconds=3))
            assert run is not None, (job, sent)
    assert not TaskRun.objects.filter(status="duplicate").exists()
    runs_audit(now=T0 + timedelta(minutes=7))
    missed = sorted(TaskRun.objects.filter(job="job: cron", status="missed").values_list("scheduled_for", flat=True))
    assert missed == [T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)]  # only while beat was down
    cron_slots = sorted(
        TaskRun.objects.filter(job="job: cron", status="running").values_list("scheduled_for", flat=True)
    )
    assert cron_slots == [T0 + timedelta(minutes=m) for m in (0, 3, 4, 5)]


def test_a_crontab_run_belongs_to_its_tick_not_to_the_minute_it_started(settings):
    """A job at minute 0 of every hour, started late (queue, restart): still the hour's run."""
    cron, _ = CrontabSchedule.objects.get_or_create(minute="0", hour="*", day_of_week="*", day_of_month="*",
                                                    month_of_year="*", timezone="UTC")  # fmt: skip
    PeriodicTask.objects.create(name="job: hourly", task="monitoring.beat_heartbeat", crontab=cron)
    late = run_claim(job="job: hourly", task="t", task_id="late", sent_at=T0 + timedelta(minutes=17))
    assert late is not None and late.scheduled_for == T0
    again = run_claim(job="job: hourly", task="t", task_id="again", sent_at=T0 + timedelta(minutes=42))
    assert again is None  # the same hour's tick: a duplicate
    assert run_claim(job="job: hourly", task="t", task_id="next", sent_at=T0 + timedelta(hours=1)) is not None


def test_a_redelivered_message_is_not_run_again():
    every(60)
    assert run_claim(job="job: every", task="t", task_id="same", now=T0) is not None
    assert run_claim(job="job: every", task="t", task_id="same", now=T0 + timedelta(seconds=5)) is None
    assert TaskRun.objects.filter(task_id="same").count() == 1


def test_beat_stamps_the_moment_it_sent_a_periodic_run():
    from monitoring.ledger.runs import SENT_AT_HEADER, stamp_beat_message

    beat_headers: dict[str, object] = {"periodic_task_name": "job: every"}
    other: dict[str, object] = {}
    stamp_beat_message(headers=beat_headers)
    stamp_beat_message(headers=other)
    assert isinstance(beat_headers[SENT_AT_HEADER], float) and SENT_AT_HEADER not in other


def test_the_task_body_does_not_run_for_a_duplicate():
    from monitoring.health.tasks import beat_heartbeat_task
    from monitoring.ledger.runs import SENT_AT_HEADER
    from monitoring.models import Heartbeat

    every(30, name="monitoring: beat heartbeat (body)")
    sent = T0.timestamp()
    for task_id in ("first", "second-beat"):  # a second beat sent the same slot
        Heartbeat.objects.all().delete()
        as_sent_by_beat(beat_heartbeat_task, task_id, "monitoring: beat heartbeat (body)", **{SENT_AT_HEADER: sent})
        ran = Heartbeat.objects.filter(name="beat").exists()
        assert ran is (task_id == "first"), task_id  # the body wrote its heartbeat only the first time


def test_an_unscheduled_job_is_slotted_by_the_minute():
    run = run_claim(job="job: ad hoc", task="t", task_id="adhoc", sent_at=T0 + timedelta(seconds=59),
                    now=T0 + timedelta(seconds=61))  # fmt: skip
    assert run is not None and run.scheduled_for == T0


def test_a_sunday_job_belongs_to_its_sunday_tick():
    cron, _ = CrontabSchedule.objects.get_or_create(minute="0", hour="10", day_of_week="0", day_of_month="*",
                                                    month_of_year="*", timezone="UTC")  # fmt: skip
    PeriodicTask.objects.create(name="job: sunday", task="monitoring.beat_heartbeat", crontab=cron)
    sunday = datetime(2026, 5, 10, 10, 0, tzinfo=UTC)  # T0 is the Monday before
    run = run_claim(job="job: sunday", task="t", task_id="sun", sent_at=sunday + timedelta(minutes=17))  # late
    assert run is not None and run.scheduled_for == sunday


def test_an_audit_before_any_run_writes_nothing():
    every(60)
    assert runs_audit(now=T0) == 0
    assert not TaskRun.objects.exists()


def test_an_interval_job_drifting_past_one_slot_is_not_a_missed_run(settings):
    """Beat sends an interval job an interval after the last send, so a little lateness each
    time can step over one slot; that is drift, not a run that did not happen."""
    settings.OPSITE_TASK_MISSED_GRACE_S = 90
    PeriodicTask.objects.update(enabled=False)
    every(60)
    for n, sent in enumerate([T0 + timedelta(seconds=59), T0 + timedelta(seconds=121)]):  # slots 12:00, 12:02
        assert run_claim(job="job: every", task="t", task_id=f"drift-{n}", sent_at=sent, now=sent) is not None
    assert runs_audit(now=T0 + timedelta(minutes=3, seconds=30)) == 0


def test_an_interval_job_is_slotted_by_its_own_interval():
    every(30)
    first = run_claim(job="job: every", task="t", task_id="i-0", sent_at=T0, now=T0)
    second = run_claim(job="job: every", task="t", task_id="i-1", sent_at=T0 + timedelta(seconds=35),
                       now=T0 + timedelta(seconds=35))  # fmt: skip
    assert first is not None and second is not None, "two 30 s slots were taken for one"
    assert (first.scheduled_for, second.scheduled_for) == (T0, T0 + timedelta(seconds=30))


def test_a_failing_run_is_recorded_failed_with_its_error():
    from opsite.celery import app

    @app.task(name="tests.ledger_failing_job")
    def failing_job() -> None:
        raise ZeroDivisionError("the job broke")

    every(60, name="job: failing")
    with pytest.raises(ZeroDivisionError):
        as_sent_by_beat(failing_job, "boom", "job: failing")
    run = TaskRun.objects.get(task_id="boom")
    assert run.status == "failed" and run.error == "ZeroDivisionError: the job broke" and run.finished_at


def test_a_run_records_its_duration_and_at_most_2000_characters_of_error():
    import time

    from opsite.celery import app

    @app.task(name="tests.ledger_slow_failing_job")
    def slow_failing_job() -> None:
        time.sleep(0.2)
        raise ValueError("x" * 5000)

    every(60, name="job: slow")
    with pytest.raises(ValueError):
        as_sent_by_beat(slow_failing_job, "slow", "job: slow")
    run = TaskRun.objects.get(task_id="slow")
    assert run.duration_ms is not None and 200 <= run.duration_ms < 5000
    assert len(run.error) == 2000 and run.error.startswith("ValueError: xxx")


def test_an_eager_call_of_a_periodic_task_runs_unrecorded():
    from monitoring.health.tasks import beat_heartbeat_task
    from monitoring.models import Heartbeat

    every(60, name="job: eager")
    as_sent_by_beat(beat_heartbeat_task, "eager", "job: eager", is_eager=True)
    assert Heartbeat.objects.filter(name="beat").exists() and not TaskRun.objects.exists()


def hourly(name: str = "job: hourly", **crontab: str) -> PeriodicTask:
    fields = {"minute": "0", "hour": "*", "day_of_week": "*", "day_of_month": "*", "month_of_year": "*",
              "timezone": "UTC", **crontab}  # fmt: skip
    cron, _ = CrontabSchedule.objects.get_or_create(**fields)
    return PeriodicTask.objects.create(name=name, task="monitoring.beat_heartbeat", crontab=cron)


def test_a_message_at_most_two_seconds_ahead_of_its_tick_belongs_to_it():
    from monitoring.ledger.runs import slot_of

    job = hourly()
    assert slot_of(job, T0 - timedelta(seconds=1.5)) == T0  # the sender's clock a little ahead
    assert slot_of(job, T0 - timedelta(seconds=2.5)) == T0 - timedelta(hours=1)


def test_a_crontab_tick_is_looked_for_up_to_32_days_back():
    from monitoring.ledger.runs import slot_of

    new_year = datetime(2026, 1, 1, tzinfo=UTC)
    job = hourly("job: yearly", hour="0", day_of_month="1", month_of_year="1")
    assert slot_of(job, new_year + timedelta(days=31, hours=12)) == new_year
    beyond = new_year + timedelta(days=32, hours=12)
    assert slot_of(job, beyond) == beyond  # no tick that far back: the minute it was sent
    assert slot_of(job, new_year + timedelta(days=32)) == new_year + timedelta(days=32)  # 32 days is too far


def test_a_crontab_in_another_time_zone_ticks_on_its_own_clock():
    from monitoring.ledger.runs import slot_of

    job = hourly("job: new york", hour="9", timezone="America/New_York")
    nine_in_new_york = datetime(2026, 5, 4, 13, 0, tzinfo=UTC)  # EDT is UTC-4
    assert slot_of(job, nine_in_new_york + timedelta(minutes=20)) == nine_in_new_york


def test_an_audit_writes_at_most_60_missed_runs_per_job_the_newest(settings):
    settings.OPSITE_TASK_MISSED_GRACE_S = 90
    PeriodicTask.objects.update(enabled=False)
    each_minute()
    run_claim(job="job: cron", task="t", task_id="cron-0", now=T0)
    now = T0 + timedelta(minutes=100)
    assert runs_audit(now=now, lookback=timedelta(hours=3)) == 60
    missed = list(TaskRun.objects.filter(status="missed").order_by("scheduled_for").values_list("scheduled_for",
                                                                                                  flat=True))  # fmt: skip
    assert missed[-1] == T0 + timedelta(minutes=98) and missed[0] == T0 + timedelta(minutes=39)


def test_an_audit_looks_two_hours_back_by_default(settings):
    settings.OPSITE_TASK_MISSED_GRACE_S = 90
    PeriodicTask.objects.update(enabled=False)
    hourly()
    run_claim(job="job: hourly", task="t", task_id="hourly-0", now=T0 - timedelta(hours=5))
    assert runs_audit(now=T0 + timedelta(minutes=30)) == 2  # the ticks of 11:00 and 12:00, not before
    assert sorted(TaskRun.objects.filter(status="missed").values_list("scheduled_for", flat=True)) == [
        T0 - timedelta(hours=1), T0]  # fmt: skip


def test_an_audit_goes_on_past_a_slot_a_late_run_claims_meanwhile(settings, needs_postgres):
    """Between the audit's read and its write, a late run claims 12:02 (the database refuses the
    missed row as a duplicate of the slot): that slot is left to the run, the later ones are
    written."""
    from django.db import connection

    settings.OPSITE_TASK_MISSED_GRACE_S = 90
    PeriodicTask.objects.update(enabled=False)
    each_minute()
    run_claim(job="job: cron", task="t", task_id="cron-0", now=T0)
    with connection.cursor() as cursor:
        cursor.execute("""
            CREATE FUNCTION claimed_late() RETURNS trigger AS $$ BEGIN
              IF NEW.status = 'missed' AND NEW.scheduled_for = '2026-05-04 12:02:00+00' THEN
                RAISE EXCEPTION 'a run claimed this slot' USING ERRCODE = 'unique_violation';
              END IF;
              RETURN NEW;
            END $$ LANGUAGE plpgsql;
            CREATE TRIGGER claimed_late BEFORE INSERT ON monitoring_taskrun FOR EACH ROW EXECUTE FUNCTION claimed_late();
        """)
    try:
        assert runs_audit(now=T0 + timedelta(minutes=5, seconds=30)) == 3  # 12:01, 12:03 and 12:04
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER claimed_late ON monitoring_taskrun; DROP FUNCTION claimed_late();")
    missed = sorted(TaskRun.objects.filter(status="missed").values_list("scheduled_for", flat=True))
    assert missed == [T0 + timedelta(minutes=m) for m in (1, 3, 4)]


def test_an_audit_counts_the_slots_after_the_start_of_its_look_back(settings):
    settings.OPSITE_TASK_MISSED_GRACE_S = 90
    PeriodicTask.objects.update(enabled=False)
    each_minute()
    run_claim(job="job: cron", task="t", task_id="cron-0", now=T0 - timedelta(hours=3))
    assert runs_audit(now=T0, lookback=timedelta(minutes=10)) == 8  # 11:51 to 11:58; not 11:50 itself


def test_an_interval_job_without_any_run_in_the_window_is_audited_from_its_start(settings):
    settings.OPSITE_TASK_MISSED_GRACE_S = 90
    PeriodicTask.objects.update(enabled=False)
    each_minute()
    every(60)
    run_claim(job="job: cron", task="t", task_id="cron-0", now=T0)  # the interval job never ran
    assert runs_audit(now=T0 + timedelta(minutes=5, seconds=30)) > 0
    assert TaskRun.objects.filter(job="job: every", status="missed").exists()


def test_an_interval_run_just_before_the_look_back_is_still_the_last_run(settings):
    """The 11:59 run bounds the gap even though the audit looks back only to 12:00: the slots
    after it, not after 12:00, are missed."""
    settings.OPSITE_TASK_MISSED_GRACE_S = 90
    PeriodicTask.objects.update(enabled=False)
    every(60)
    run_claim(job="job: every", task="t", task_id="before", sent_at=T0 - timedelta(seconds=30),
              now=T0 - timedelta(seconds=30))  # fmt: skip
    assert runs_audit(now=T0 + timedelta(minutes=5), lookback=timedelta(minutes=5)) == 3
    missed = sorted(TaskRun.objects.filter(status="missed").values_list("scheduled_for", flat=True))
    assert missed == [T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)]


def test_each_job_is_one_row_with_its_last_run_next_run_and_counts():
    from monitoring.ledger.jobs import job_summaries

    every(60, "job: minutely")
    each_minute("job: cron")
    now = datetime.now(UTC).replace(microsecond=0)
    for minutes_ago, status in ((3, "succeeded"), (2, "missed"), (1, "failed")):
        slot = now - timedelta(minutes=minutes_ago)
        TaskRun.objects.create(job="job: minutely", task="t", task_id=f"m-{minutes_ago}", scheduled_for=slot,
                               started_at=slot, status=status, duration_ms=12.5, node="w1")  # fmt: skip
    TaskRun.objects.create(job="job: minutely", task="t", task_id="dup", scheduled_for=now - timedelta(minutes=1),
                           started_at=now, status="duplicate", node="w2")  # fmt: skip
    TaskRun.objects.create(job="job: minutely", task="t", task_id="old", scheduled_for=now - timedelta(days=2),
                           started_at=now - timedelta(days=2), status="missed", node="w1")  # fmt: skip
    rows = {row["job"]: row for row in job_summaries(now=now)}
    minutely = rows["job: minutely"]
    assert (minutely["runs_24h"], minutely["failed_24h"], minutely["missed_24h"], minutely["duplicate_24h"]) == (
        2, 1, 1, 1)  # fmt: skip
    assert minutely["last_status"] == "failed" and minutely["last_node"] == "w1"  # not the duplicate, nor the miss
    assert minutely["next_run_at"] is not None
    assert datetime.fromisoformat(minutely["next_run_at"]) <= now + timedelta(seconds=60)
    cron = rows["job: cron"]
    assert cron["last_status"] is None and cron["runs_24h"] == 0
    assert now <= datetime.fromisoformat(cron["next_run_at"]) <= now + timedelta(seconds=61)
