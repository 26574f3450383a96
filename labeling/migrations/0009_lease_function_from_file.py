"""The lease function, loaded from its one home: labeling/sql/lease_next.sql.

The function is the one 0007 created (the same statements, now written out in full, a comment on
each step). From here on, a change to it is an edit of that file and a new migration that loads
the file again, as this one does. On a fresh database this migration then creates the newest text
and the later ones create it again: harmless, as PL/pgSQL checks a body's syntax when it is
created and the tables it names only when it runs. Going back restores 0007's text.
"""

from importlib import import_module

from django.db import migrations

from labeling import sql

# 0007 is history: it keeps its own copy of the first version, which is what reverting restores.
_FIRST_VERSION = import_module("labeling.migrations.0007_lease_function").CREATE


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0008_import_rejected_count"),
    ]

    # One statement each, as written (a list: RunSQL does not split it on semicolons).
    operations = [
        migrations.RunSQL(
            sql=[sql.read("lease_next.sql")],
            reverse_sql=[_FIRST_VERSION],
        )
    ]
