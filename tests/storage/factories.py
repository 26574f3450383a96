"""Factories for the storage app: pins (one row per CID)."""

from __future__ import annotations

import factory

from storage.models import Pin, PinKind
from storage.unixfs import cid_of_bytes


class PinFactory(factory.django.DjangoModelFactory[Pin]):
    """A pending pin of an item's bytes; the CID is real, the bytes are not stored."""

    class Meta:
        model = Pin

    cid = factory.Sequence(lambda n: cid_of_bytes(f"pin {n}".encode()))
    kind = PinKind.ITEM
