"""``manage.py cid PATH...``: print the CID an IPFS node would give each file, storing nothing.

Output is ``<cid> <path>`` per line, like ``sha256sum``, so it can be diffed against
``ipfs add --only-hash --cid-version 1 --raw-leaves -Q`` or against an item's stored CID.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from storage.unixfs import cid_of_file


class Command(BaseCommand):
    help = "Print the Kubo-compatible CIDv1 of each file (hashes only; nothing is stored)."
    # Pure hashing: no database, so no checks that could fail before migrations exist.
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")

    def handle(self, *args: Any, **options: Any) -> None:
        for line in cid_lines(paths=options["paths"]):
            self.stdout.write(line)


def cid_lines(*, paths: Sequence[Path]) -> Iterator[str]:
    """``<cid> <path>`` for each path; every path is checked before any file is hashed."""
    for path in paths:
        check_readable_file(path=path)
    for path in paths:
        try:
            cid = cid_of_file(path)
        except OSError as exc:
            raise CommandError(f"{path}: {exc.strerror or exc}") from None
        yield f"{cid} {path}"


def check_readable_file(*, path: Path) -> None:
    # A failure up front, before minutes of hashing, and as one line (CommandError, exit 1).
    if not path.exists():
        raise CommandError(f"{path}: no such file")
    if not path.is_file():
        raise CommandError(f"{path}: not a regular file")
