"""``manage.py settle_epoch``: settle an epoch now, with the service the beat task calls.

Opens the next epoch (or resumes the unfinished one), stores its payout table, queues
``submitRoot`` and drives the outbox in this process until the root is on-chain; ``--accept``
also waits out the timelock and accepts it. Prints the epoch's number, root and table CID.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import ApplicationError
from rewards.models import Epoch, EpochStatus
from rewards.services import epoch_advance, epoch_settle_now, outbox_process


class Command(BaseCommand):
    help = "Settle an epoch now: payout table, submitRoot (and, with --accept, acceptRoot)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--accept", action="store_true", help="wait out the timelock and accept the root"
        )
        parser.add_argument(
            "--no-send", action="store_true", help="only queue submitRoot; the worker sends it"
        )
        parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            epoch = epoch_settle_now()
        except ApplicationError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        if epoch is None:
            self.stdout.write("nothing to settle: no accepted rewards with a wallet and a budget")
            return
        if not options["no_send"]:
            target = (
                {EpochStatus.ACCEPTED}
                if options["accept"]
                else {EpochStatus.PENDING_TIMELOCK, EpochStatus.ACCEPTED}
            )
            epoch = drive(epoch, target=target, timeout=options["timeout"])
        self.stdout.write(
            f"epoch {epoch.number} {epoch.status}\n"
            f"root {epoch.merkle_root}\n"
            f"payout table {epoch.payout_table_cid}\n"
            f"root id {epoch.root_id}  leaves {epoch.leaf_count}  total {epoch.total_committed}"
        )
        if epoch.status == EpochStatus.FAILED:
            raise CommandError(f"epoch {epoch.number} failed: {epoch.error}")


def drive(epoch: Epoch, *, target: set[EpochStatus], timeout: float, poll: float = 0.3) -> Epoch:
    """Send and confirm in this process until the epoch reaches ``target`` (or fails)."""
    deadline = time.monotonic() + timeout
    while epoch.status not in target and epoch.status != EpochStatus.FAILED:
        if time.monotonic() > deadline:
            raise CommandError(f"epoch {epoch.number} still {epoch.status} after {timeout:.0f} s")
        outbox_process()
        epoch = epoch_advance(epoch=epoch)
        if epoch.status not in target:
            time.sleep(poll)
    return epoch
