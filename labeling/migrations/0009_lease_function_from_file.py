"""The lease function, loaded from its one home: labeling/sql/lease_next.sql.

Databases that ran 0007 before it loaded the file hold the first text of the function (the same
statements, generated from templates); this installs the file's. A change to the function is an
edit of that file and a new migration that loads the file again, as this one does. On a fresh
database each of them creates the newest text: harmless, as PL/pgSQL checks a body's syntax when
it is created and the tables it names only when it runs.
"""

from django.db import migrations

from labeling import sql


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0008_import_rejected_count"),
    ]

    # Going back leaves the function as it is: 0007 creates the same one.
    operations = [
        migrations.RunSQL(sql=[sql.read("lease_next.sql")], reverse_sql=migrations.RunSQL.noop)
    ]
