"""EXPLAIN ANALYZE of next-task's lease as the app runs it: the statements inside the lease
function (labeling/sql/lease_next.sql), with the generic plans PL/pgSQL settles on after five runs,
for the contributor with the most labels, in a transaction that is rolled back.

    DATABASE_URL=postgresql://... .venv/bin/python -m bench.explain_lease CAMPAIGN_ID [--gold]

The plans come from auto_explain (`log_nested_statements`), sent to this client as LOG
messages; loading it needs a superuser, as the bench's local database has. bench/next_task.py
runs this with `--explain`.
"""

from __future__ import annotations

import argparse
import os
from datetime import timedelta
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("campaign_id", type=int)
    parser.add_argument("--gold", action="store_true", help="ask for the gold queue first")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    import django

    django.setup()
    from django.db import connection, transaction
    from django.utils import timezone

    from labeling.models import Campaign
    from labeling.selectors import campaign_labels_affordable
    from labeling.services import LEASE_LOCK_CLASS, LEASE_NEXT

    campaign = Campaign.objects.get(pk=args.campaign_id)
    plans: list[str] = []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT worker_id FROM labeling_assignment WHERE campaign_id = %s "
            "GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
            [campaign.pk],
        )
        row = cursor.fetchone()
        worker = row[0] if row else 0
        # A live lease would be the answer, and the queue scans would not run.
        cursor.execute(
            "UPDATE labeling_assignment SET leased_until = now() - interval '1 second' "
            "WHERE worker_id = %s AND status = 'leased'",
            [worker],
        )
        cursor.execute("LOAD 'auto_explain'")
        for setting in (
            "plan_cache_mode = force_generic_plan",
            "auto_explain.log_min_duration = 0",
            "auto_explain.log_analyze = on",
            "auto_explain.log_buffers = on",
            "auto_explain.log_nested_statements = on",
            "client_min_messages = log",
        ):
            cursor.execute(f"SET LOCAL {setting}")

        def collect(diagnostic: Any) -> None:
            if "plan:" in (diagnostic.message_primary or ""):
                plans.append(diagnostic.message_primary)

        connection.connection.add_notice_handler(collect)
        now = timezone.now()
        cursor.execute(
            LEASE_NEXT,
            [
                LEASE_LOCK_CLASS,
                worker,
                campaign.pk,
                args.gold,
                now,
                now + timedelta(minutes=5),
                campaign.max_labels,
                campaign_labels_affordable(campaign=campaign),
            ],
        )
        connection.connection.remove_notice_handler(collect)
        transaction.set_rollback(True)
    print(f"-- lease function's statements, generic plans, worker {worker}, campaign {campaign.pk}")
    print("\n\n".join(plans))


if __name__ == "__main__":
    main()
