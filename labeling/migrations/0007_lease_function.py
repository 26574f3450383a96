"""Next-task's lease as one PL/pgSQL function, `labeling_lease_next`: what it does, step by
step, and why it is one function, is written in its file, labeling/sql/lease_next.sql."""

from django.db import migrations

from labeling import sql

# Migration 0009 loads the file again, for databases that ran this migration when it held a
# copy of its own (the same statements, generated from templates).
DROP = """
DROP FUNCTION IF EXISTS labeling_lease_next(
    integer, bigint, bigint, boolean, timestamptz, timestamptz, integer, numeric
)
"""


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0006_campaign_label_tally"),
    ]

    # One statement each, as written (a list: RunSQL does not split it on semicolons).
    operations = [migrations.RunSQL(sql=[sql.read("lease_next.sql")], reverse_sql=[DROP])]
