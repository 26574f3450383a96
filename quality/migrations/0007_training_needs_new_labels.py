"""A training is due on new labels only (quality.services.refit.training_due, issue 22).

Also frees campaigns whose training claim was never released: the old claim raised the bar by a
million and only a stored model set it back, so a training that found nothing to learn (or
crashed) left the campaign untrainable for good.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("quality", "0006_consensus_sweep"),
    ]

    operations = [
        migrations.AddField(
            model_name="campaignquality",
            name="labels_at_train",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.RunSQL(
            "UPDATE quality_campaignquality SET next_train_at = next_train_at - 1000000 "
            "WHERE next_train_at >= 1000000",
            reverse_sql=migrations.RunSQL.noop,
        ),
    ]
