"""The campaign's label counter moves into shards (CampaignLabelTally), which the submit statement
bumps itself; the counts so far go into shard 0."""

import django.db.models.deletion
from django.apps.registry import Apps
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor


def counts_to_tally(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    campaign = apps.get_model("labeling", "Campaign")
    tally = apps.get_model("labeling", "CampaignLabelTally")
    tally.objects.bulk_create(
        tally(campaign_id=pk, shard=0, labels=n)
        # The historical model still has label_count; mypy's plugin sees today's.
        for pk, n in campaign.objects.filter(label_count__gt=0).values_list("pk", "label_count")  # type: ignore[misc]
    )


def tally_to_counts(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    campaign = apps.get_model("labeling", "Campaign")
    tally = apps.get_model("labeling", "CampaignLabelTally")
    totals = tally.objects.values("campaign_id").annotate(n=models.Sum("labels"))
    for row in totals:
        campaign.objects.filter(pk=row["campaign_id"]).update(label_count=row["n"])  # type: ignore[misc]


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0005_hot_path_indexes"),
    ]

    operations = [
        migrations.CreateModel(
            name="CampaignLabelTally",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("shard", models.PositiveSmallIntegerField()),
                ("labels", models.PositiveIntegerField(default=0)),
                (
                    "campaign",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="label_tallies",
                        to="labeling.campaign",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("campaign", "shard"), name="campaign_label_tally_shard"
                    )
                ],
            },
        ),
        migrations.RunPython(counts_to_tally, tally_to_counts),
        migrations.RemoveField(model_name="campaign", name="label_count"),
    ]
