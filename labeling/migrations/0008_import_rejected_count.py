"""ImportJob.rejected_count: the rejected units as a column, so polling a job never loads its list.

Existing jobs get their list's length: the list was all they kept, so a job that rejected more than
MAX_REJECTED_LISTED units (labeling/services/imports.py) counts that many.
"""

from django.db import migrations, models

_FILL = """
UPDATE labeling_importjob
SET rejected_count = jsonb_array_length(rejected)
WHERE jsonb_typeof(rejected) = 'array'
"""


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0007_lease_function"),
    ]

    operations = [
        migrations.AddField(
            model_name="importjob",
            name="rejected_count",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.RunSQL(_FILL, reverse_sql=migrations.RunSQL.noop),
    ]
