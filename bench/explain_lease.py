"""EXPLAIN ANALYZE of next-task's lease statement as the app runs it: prepared, with the generic
plan PostgreSQL settles on after five runs (core/sql.py), for the contributor with the most
labels, in a transaction that is rolled back.

    DATABASE_URL=postgresql://... .venv/bin/python -m bench.explain_lease CAMPAIGN_ID [--gold]

bench/next_task.py runs it with `--explain`.
"""

from __future__ import annotations

import argparse
import os
import re
from datetime import timedelta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("campaign_id", type=int)
    parser.add_argument("--gold", action="store_true", help="the gold queue's statement")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    import django

    django.setup()
    from django.db import connection, transaction
    from django.utils import timezone

    from labeling.models import Campaign
    from labeling.services.hot_sql import _LEASE_SQL

    campaign = Campaign.objects.get(pk=args.campaign_id)
    now = timezone.now()
    names = ["worker", "campaign", "now", "until", "max_labels"]
    types = ["bigint", "bigint", "timestamptz", "timestamptz", "integer"]
    sql = _LEASE_SQL[(args.gold, True)]
    for number, name in enumerate(names, start=1):
        sql = sql.replace(f"%({name})s", f"${number}")
    assert not re.search(r"%\(\w+\)s", sql), "a parameter was left unnamed"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT worker_id FROM labeling_assignment WHERE campaign_id = %s "
            "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
            [campaign.pk],
        )
        row = cursor.fetchone()
        worker = row[0] if row else 0
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE bench_lease ({', '.join(types)}) AS {sql}")
        values = [worker, campaign.pk, now, now + timedelta(minutes=5), campaign.max_labels]
        cursor.execute(
            "EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_lease (%s, %s, %s, %s, %s)", values
        )
        plan = [r[0] for r in cursor.fetchall()]
        cursor.execute("DEALLOCATE bench_lease")
        transaction.set_rollback(True)
    print(f"-- generic plan, worker {worker}, campaign {campaign.pk}")
    print("\n".join(plan))


if __name__ == "__main__":
    main()
