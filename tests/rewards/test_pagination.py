"""The epochs (the rewards' history) page with cursors, newest first."""

from __future__ import annotations

import pytest

from accounts.models import User
from rewards.models import EpochStatus

from ..conftest import client_for
from ..pages import assert_bad_page_queries, follow_pages
from .factories import EpochFactory

pytestmark = pytest.mark.django_db


def test_epochs_page_through_every_epoch_once(contributor: User) -> None:
    for number in range(1, 8):
        EpochFactory.create(number=number, status=EpochStatus.ACCEPTED)
    client = client_for(contributor)
    pages = follow_pages(client, "/api/rewards/epochs/?page_size=3")
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [e["number"] for p in pages for e in p] == [7, 6, 5, 4, 3, 2, 1]
    assert_bad_page_queries(client, "/api/rewards/epochs/")
