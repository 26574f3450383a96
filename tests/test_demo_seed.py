"""The demo's promise (README, `make demo`): after seeding, bob and carol are trusted in the
Shapes campaign on its gold items, and their agreeing labels are accepted rewards, so the first
settled epoch pays them. A change to the quality rules that left them on probation made the demo
pay nobody once; this test catches that."""

from __future__ import annotations

import pytest

from quality.models import WorkerSkill, WorkerStatus
from rewards.models import RewardEntry, RewardStatus
from rewards.services import rewards_resolve_all_pending
from tools import seed

# transaction=True: accounting runs in on-commit hooks (Celery is eager in tests), as in the demo.
pytestmark = pytest.mark.django_db(transaction=True)


def test_demo_seed_leaves_bob_and_carol_trusted_with_accepted_rewards() -> None:
    seed.main()
    # What the demo's settle step (tools/chain.py) and the beat do before an epoch: held rewards
    # of workers trusted since are accepted.
    rewards_resolve_all_pending()
    skills = {
        skill.worker.email: skill
        for skill in WorkerSkill.objects.filter(worker__email__in=seed.CROWD).select_related(
            "worker"
        )
    }
    assert set(skills) == set(seed.CROWD)
    for email, skill in skills.items():
        assert skill.status == WorkerStatus.TRUSTED, email
        assert skill.gold_seen > 0, email
        accepted = RewardEntry.objects.filter(
            worker__email=email, status=RewardStatus.ACCEPTED
        ).count()
        assert accepted > 0, email
