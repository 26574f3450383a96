"""``manage.py verify_epoch N`` / ``--all``: check on-chain roots against their payout tables.

The table is fetched by the CID stored on-chain (``rootInfo``), the tree rebuilt, its root compared
with the on-chain one, and the table cross-checked against the ledger. Exits non-zero on any
mismatch. With ``--rpc-url`` and ``--distributor`` it needs no database (an outsider's check; see
docs/rewards.md): then ``N`` is looked up in the tables themselves.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from web3 import Web3

from rewards.chain import RewardDistributorClient, RootStatus
from rewards.models import EpochStatus
from rewards.runtime import distributor_client, require_chain
from rewards.selectors import epoch_get, epoch_list, ledger_problems
from rewards.verify import (
    Fetch,
    RootReport,
    gateway_fetcher,
    ipfs_api_fetcher,
    print_reports,
    verify_roots,
)


class Command(BaseCommand):
    help = "Verify epoch roots on-chain against their payout tables (and the ledger)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("number", nargs="?", type=int, help="an epoch number")
        parser.add_argument("--all", action="store_true", help="every root on-chain")
        parser.add_argument("--root", type=int, action="append", help="an on-chain rootId")
        parser.add_argument("--rpc-url", help="JSON-RPC URL (outsider mode, no database)")
        parser.add_argument("--distributor", help="RewardDistributor address (outsider mode)")
        parser.add_argument("--gateway", help="fetch tables from this IPFS HTTP gateway")
        parser.add_argument("--ipfs-api", help="fetch tables through this IPFS node's RPC API")
        parser.add_argument("--no-ledger", action="store_true", help="skip the ledger check")

    def handle(self, *args: Any, **options: Any) -> None:
        number, roots = options["number"], options["root"]
        if sum([number is not None, bool(roots), options["all"]]) != 1:
            raise CommandError("give exactly one of: an epoch number, --root ID, --all")
        outsider = bool(options["rpc_url"] or options["distributor"])
        if outsider:
            if not (options["rpc_url"] and options["distributor"]):
                raise CommandError("--rpc-url and --distributor go together")
            w3 = Web3(Web3.HTTPProvider(options["rpc_url"], request_kwargs={"timeout": 60}))
            client = RewardDistributorClient(w3, options["distributor"])
        else:
            client = distributor_client(require_chain())
        use_ledger = not outsider and not options["no_ledger"]
        fetch = self._fetcher(options, outsider)

        root_ids: list[int] | None = roots
        if number is not None and not outsider:
            epoch = epoch_get(number=number)
            if epoch is None:
                raise CommandError(f"no epoch {number}")
            if epoch.root_id is None:
                raise CommandError(f"epoch {number} has no on-chain root ({epoch.status})")
            root_ids = [epoch.root_id]
        reports = verify_roots(client, fetch, root_ids)
        if number is not None and outsider:
            reports = [r for r in reports if r.table is not None and r.table.epoch == number]
            if not reports:
                raise CommandError(f"no on-chain root has a payout table for epoch {number}")
        if use_ledger:
            self._cross_check(reports, every_root=options["all"])
        if print_reports(reports, self.stdout.write):
            raise CommandError("verification failed")

    def _fetcher(self, options: dict[str, Any], outsider: bool) -> Fetch:
        if options["gateway"]:
            return gateway_fetcher(options["gateway"])
        if options["ipfs_api"]:
            return ipfs_api_fetcher(options["ipfs_api"])
        if outsider:
            raise CommandError("an outsider check needs --gateway or --ipfs-api")
        from storage.services import get_store

        return get_store().read_bytes

    def _cross_check(self, reports: list[RootReport], *, every_root: bool) -> None:
        for report in reports:
            if report.table is not None and report.status != RootStatus.REVOKED:
                report.problems.extend(ledger_problems(table=report.table))
        if every_root:  # and nothing the ledger calls settled is missing on-chain
            on_chain = {r.root_id for r in reports}
            for epoch in epoch_list().filter(
                status__in=[EpochStatus.PENDING_TIMELOCK, EpochStatus.ACCEPTED]
            ):
                if epoch.root_id not in on_chain:
                    reports.append(
                        RootReport(
                            epoch.root_id or 0,
                            RootStatus.NONE,
                            epoch.merkle_root,
                            epoch.payout_table_cid,
                            int(epoch.total_committed or 0),
                            problems=[f"epoch {epoch.number} ({epoch.status}) is not on-chain"],
                        )
                    )
