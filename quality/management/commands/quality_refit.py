"""`python manage.py quality_refit CAMPAIGN_ID [--train]`: refit one campaign now, in-process."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import ApplicationError
from quality import services


class Command(BaseCommand):
    help = (
        "Run the full quality refit (Dawid-Skene over all answers, worker skills and suspensions, "
        "every item's consensus, closes and priorities) of one campaign now. With --train, train "
        "the campaign's ML model first (it then joins the refit)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("campaign_id", type=int)
        parser.add_argument("--train", action="store_true", help="train the ML model first")

    def handle(self, *args: Any, **options: Any) -> None:
        campaign_id = options["campaign_id"]
        try:
            if options["train"]:
                version = services.model_train(campaign_id=campaign_id)
                self.stdout.write(
                    "model: nothing to learn yet"
                    if version is None
                    else f"model v{version.version}: trained on {version.trained_on} items, "
                    f"out-of-fold accuracy {version.oof_accuracy:.3f}"
                )
            summary = services.campaign_refit(campaign_id=campaign_id)
        except ApplicationError as error:
            raise CommandError(error.message) from None
        if summary is None:
            self.stdout.write("refit skipped: no labels yet, or another refit holds the campaign")
            return
        self.stdout.write(json.dumps(summary, sort_keys=True))
