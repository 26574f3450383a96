"""Check the payout roots on-chain against their payout tables. Anyone can run this.

It needs only a JSON-RPC URL, the distributor's address and a way to fetch a CID: an IPFS gateway,
an IPFS node's RPC API, or Kyodo's own content store. No database and no Django: ``manage.py
verify_epoch`` adds the cross-check against Kyodo's ledger on top. For each root it

1. reads ``rootInfo(rootId)`` from the contract: the root, the payout table's CID, the total;
2. fetches the table by that CID and checks that the bytes hash to it (a gateway cannot lie);
3. checks the table: every leaf's campaign shares add up to its amount, the leaves add up to the
   total, the per-campaign commitments match the leaves;
4. rebuilds the Merkle tree from the leaves and compares its root with the on-chain root, and the
   table's total with the on-chain ``totalCommitted``;
5. checks it against the previous accepted root: no wallet's amount and no campaign's commitment
   went down (roots are cumulative).

A revoked root never paid anyone: its problems are reported as warnings, not failures.

    python -m rewards.verify --rpc-url URL --distributor 0x... --gateway https://ipfs.io --all
"""

from __future__ import annotations

import argparse
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from storage.unixfs import cid_of_bytes

from .chain import RewardDistributorClient, RootStatus
from .payout import PayoutTable, PayoutTableError, check_successor, check_table, parse_table

Fetch = Callable[[str], bytes]


@dataclass
class RootReport:
    root_id: int
    status: RootStatus
    root: str
    cid: str
    total_committed: int
    table: PayoutTable | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        epoch = f"epoch {self.table.epoch}" if self.table else "epoch ?"
        leaves = f"{len(self.table.leaves)} leaves" if self.table else "no table"
        verdict = "OK" if self.ok else "MISMATCH"
        return (
            f"root {self.root_id} ({self.status.name.lower()}, {epoch}): {verdict}; "
            f"{leaves}, total {self.total_committed}, root {self.root}, table {self.cid}"
        )


def gateway_fetcher(base_url: str, *, timeout: float = 120.0) -> Fetch:
    """Fetch ``<base_url>/ipfs/<cid>`` from an HTTP gateway (bytes are checked against the CID)."""
    base = base_url.rstrip("/")

    def fetch(cid: str) -> bytes:
        url = f"{base}/ipfs/{urllib.parse.quote(cid)}"
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - user's URL
            data: bytes = response.read()
        return data

    return fetch


def ipfs_api_fetcher(api_url: str, *, timeout: float = 120.0) -> Fetch:
    """Fetch through an IPFS node's RPC API (``POST /api/v0/cat``)."""
    base = api_url.rstrip("/")

    def fetch(cid: str) -> bytes:
        url = f"{base}/api/v0/cat?arg={urllib.parse.quote(cid)}"
        request = urllib.request.Request(url, method="POST")  # noqa: S310 - user's URL
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            data: bytes = response.read()
        return data

    return fetch


def fetch_verified(fetch: Fetch, cid: str) -> bytes:
    """The bytes of ``cid``, refused unless they hash to it (UnixFS, raw leaves, CIDv1)."""
    data = fetch(cid)
    actual = cid_of_bytes(data)
    if actual != cid:
        raise PayoutTableError(f"the fetched bytes hash to {actual}, not {cid}")
    return data


def verify_root(
    client: RewardDistributorClient,
    root_id: int,
    fetch: Fetch,
    *,
    previous: PayoutTable | None = None,
) -> RootReport:
    """Verify one on-chain root; ``previous`` is the table of the accepted root before it."""
    info = client.root(root_id)
    report = RootReport(
        root_id, info.status, info.root, info.payout_table_cid, info.total_committed
    )
    if info.status == RootStatus.NONE:
        report.problems.append(f"the contract has no root {root_id}")
        return report
    try:
        table = parse_table(fetch_verified(fetch, info.payout_table_cid))
    except (PayoutTableError, OSError) as exc:
        report.problems.append(f"payout table {info.payout_table_cid}: {exc}")
    else:
        report.table = table
        report.problems.extend(_check_against_chain(client, info.root, table, info.total_committed))
        if previous is not None:
            report.problems.extend(check_successor(previous, table))
    if info.status == RootStatus.REVOKED and report.problems:
        report.warnings, report.problems = report.problems, []
    return report


def _check_against_chain(
    client: RewardDistributorClient, root: str, table: PayoutTable, total_committed: int
) -> list[str]:
    tree, problems = check_table(table)
    if tree is not None and tree.root != root.lower():
        problems.append(f"the table's leaves give root {tree.root}, the chain has {root}")
    if table.root.lower() != root.lower():
        problems.append(f"the table names root {table.root}, the chain has {root}")
    if table.total_committed != total_committed:
        problems.append(
            f"the table commits {table.total_committed}, the chain says {total_committed}"
        )
    if table.distributor.lower() != client.address.lower():
        problems.append(f"the table is for distributor {table.distributor}")
    chain_id = client.w3.eth.chain_id
    if table.chain_id != chain_id:
        problems.append(f"the table is for chain {table.chain_id}, the node is on {chain_id}")
    return problems


def verify_roots(
    client: RewardDistributorClient, fetch: Fetch, root_ids: Sequence[int] | None = None
) -> list[RootReport]:
    """Verify ``root_ids`` (default: every root), each against the accepted root before it."""
    count = client.root_count()
    wanted = set(root_ids) if root_ids is not None else None
    reports = []
    previous: PayoutTable | None = None
    for root_id in range(1, count + 1):
        needed = wanted is None or root_id in wanted
        if not needed and client.root(root_id).status != RootStatus.ACCEPTED:
            continue  # neither asked for nor a predecessor of anything
        report = verify_root(client, root_id, fetch, previous=previous)
        if needed:
            reports.append(report)
        if report.status == RootStatus.ACCEPTED and report.table is not None:
            previous = report.table
    if wanted is not None:
        reports.extend(
            RootReport(rid, RootStatus.NONE, "", "", 0, problems=[f"no root {rid} on-chain"])
            for rid in sorted(wanted)
            if rid > count or rid < 1
        )
    return reports


def main(argv: Sequence[str] | None = None) -> int:
    from web3 import Web3

    parser = argparse.ArgumentParser(
        prog="python -m rewards.verify", description="Verify Kyodo payout roots on-chain."
    )
    parser.add_argument("--rpc-url", required=True, help="JSON-RPC URL of the chain")
    parser.add_argument("--distributor", required=True, help="RewardDistributor address")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--gateway", help="IPFS HTTP gateway, e.g. https://ipfs.io")
    source.add_argument("--ipfs-api", help="IPFS node RPC API, e.g. http://127.0.0.1:5001")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--root", type=int, action="append", help="an on-chain rootId")
    which.add_argument("--all", action="store_true", help="every root")
    args = parser.parse_args(argv)
    fetch = gateway_fetcher(args.gateway) if args.gateway else ipfs_api_fetcher(args.ipfs_api)
    w3 = Web3(Web3.HTTPProvider(args.rpc_url, request_kwargs={"timeout": 60}))
    client = RewardDistributorClient(w3, args.distributor)
    reports = verify_roots(client, fetch, None if args.all else args.root)
    return print_reports(reports, sys.stdout.write)


def print_reports(reports: Sequence[RootReport], write: Callable[[str], object]) -> int:
    """Print one line per root (and its problems); the exit status: 0 if all verified."""
    for report in reports:
        write(report.summary() + "\n")
        for problem in report.problems:
            write(f"  problem: {problem}\n")
        for warning in report.warnings:
            write(f"  warning: {warning}\n")
    if not reports:
        write("no roots on-chain yet\n")
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
