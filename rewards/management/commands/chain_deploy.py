"""``manage.py chain_deploy``: deploy the reward distributor (and a demo token) and record it.

The deployer (``--deployer-key``, else ``KYODO_DEPLOYER_KEY``, else the updater key) becomes the
admin; the updater account (``KYODO_UPDATER_KEY``) gets the root-updater and campaign-manager roles.
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from eth_account import Account

from rewards.runtime import get_web3, updater_account
from rewards.services import chain_deploy

TOKEN = 10**18


class Command(BaseCommand):
    help = "Deploy RewardDistributor (and KyodoToken unless --token) and make it the active one."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--token", help="an existing ERC-20 to pay in (default: deploy one)")
        parser.add_argument("--timelock", type=int, default=86_400, help="seconds (default 1 day)")
        parser.add_argument("--guardian", help="guardian address (default: the deployer)")
        parser.add_argument("--deployer-key", help="hex private key of the admin/deployer")
        parser.add_argument(
            "--supply", type=int, default=10**9, help="whole tokens minted to the deployer"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        w3 = get_web3()
        chain_id = int(w3.eth.chain_id)
        if chain_id != int(settings.KYODO_CHAIN_ID):
            raise CommandError(f"the node is on chain {chain_id}: set KYODO_CHAIN_ID={chain_id}")
        updater = updater_account()
        key = options["deployer_key"] or os.environ.get("KYODO_DEPLOYER_KEY")
        deployer = Account.from_key(key) if key else updater
        deployment = chain_deploy(
            deployer=deployer,
            updater=updater.address,
            timelock=options["timelock"],
            guardian=options["guardian"],
            token=options["token"],
            initial_supply=options["supply"] * TOKEN,
        )
        self.stdout.write(
            f"chain {deployment.chain_id}\n"
            f"token {deployment.token}\n"
            f"distributor {deployment.distributor}\n"
            f"start block {deployment.deploy_block}  timelock {deployment.timelock}s"
        )
