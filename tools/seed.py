"""Demo data: users, an image campaign of generated shapes and a text campaign. Idempotent.

Run through `make demo` (tools/demo.py), or alone: `python -m tools.seed` after `migrate`.
"""

from __future__ import annotations

import io
import logging
import os
import random

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
django.setup()

from django.core.files.uploadedfile import SimpleUploadedFile  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from accounts.models import Role, User  # noqa: E402
from labeling.models import Campaign, Item, TaskType  # noqa: E402
from labeling.selectors import campaign_label_count  # noqa: E402
from labeling.services import annotation_submit, campaign_create, items_upload, task_lease_next  # noqa: E402
from quality.models import WorkerSkill, WorkerStatus  # noqa: E402
from quality.selectors import worker_statuses  # noqa: E402
from quality.services import campaign_refit  # noqa: E402

PASSWORD = "kyodo-demo"  # noqa: S105 - the documented demo password
USERS = [
    ("admin@kyodo.local", Role.REQUESTER, True),
    ("requester@kyodo.local", Role.REQUESTER, False),
    ("alice@kyodo.local", Role.CONTRIBUTOR, False),
    ("bob@kyodo.local", Role.CONTRIBUTOR, False),
    ("carol@kyodo.local", Role.CONTRIBUTOR, False),
    ("buyer@kyodo.local", Role.BUYER, False),
]
SHAPES = ["circle", "square", "triangle"]
# The simulated crowd of the Shapes campaign and how often each answers right: careful workers,
# as a campaign with gold items must see before it pays them (docs/quality.md, "Rewards").
CROWD = {"bob@kyodo.local": 0.95, "carol@kyodo.local": 0.92}
TOKEN = 10**18  # one token in base units (18 decimals)

POSITIVE = [
    "I love this {}",
    "What a great {}",
    "The {} works perfectly",
    "Best {} I have bought",
    "Really happy with the {}",
]
NEGATIVE = [
    "I hate this {}",
    "The {} broke after a day",
    "Terrible {}",
    "Never buying this {} again",
    "The {} is a waste of money",
]
NEUTRAL = [
    "The {} arrived on Tuesday",
    "It is a {}",
    "The {} comes in a box",
    "I have a {}",
    "This {} is blue",
]
THINGS = ["phone", "lamp", "kettle", "backpack", "chair", "camera", "blender", "jacket"]


def shape_png(shape: str, rng: random.Random, size: int = 96) -> bytes:
    """A shape on a noisy background: easy for people, learnable for a small model."""
    bg = tuple(rng.randint(200, 255) for _ in range(3))
    img = Image.new("RGB", (size, size), bg)
    draw = ImageDraw.Draw(img)
    for _ in range(40):
        x, y = rng.randrange(size), rng.randrange(size)
        draw.point((x, y), fill=tuple(rng.randint(150, 255) for _ in range(3)))
    colour = tuple(rng.randint(0, 140) for _ in range(3))
    r = rng.randint(size // 5, size // 3)
    cx, cy = rng.randint(r + 2, size - r - 2), rng.randint(r + 2, size - r - 2)
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif shape == "square":
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=colour)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def ensure_users() -> dict[str, User]:
    users = {}
    for email, role, staff in USERS:
        user = User.objects.filter(email=email).first()
        if user is None:
            create = User.objects.create_superuser if staff else User.objects.create_user
            user = create(email=email, password=PASSWORD, role=role)
        users[email] = user
    return users


def ensure_image_campaign(owner: User, n_images: int = 210) -> Campaign:
    campaign = Campaign.objects.filter(owner=owner, title="Shapes").first()
    if campaign is not None:
        return campaign
    campaign = campaign_create(
        owner=owner,
        title="Shapes",
        instructions="Which shape is in the picture? Press 1, 2 or 3.",
        task_type=TaskType.IMAGE_CLASSIFICATION,
        label_schema=SHAPES,
        min_labels=2,
        max_labels=3,
        reward_per_label=TOKEN // 100,
        budget=100 * TOKEN,
        gold_ratio=0.1,
    )
    rng = random.Random(7)
    files, truth = [], {}
    for i in range(n_images):
        shape = SHAPES[i % 3]
        data = shape_png(shape, rng)
        files.append(SimpleUploadedFile(f"{shape}-{i:03d}.png", data))
        truth[f"{shape}-{i:03d}.png"] = shape
    items_upload(campaign=campaign, files=files)
    # A few gold items with known answers (never shown to contributors).
    for item in Item.objects.filter(campaign=campaign).order_by("id")[:12]:
        Item.objects.filter(pk=item.pk).update(gold_label=truth[item.filename])
    return campaign


def ensure_text_campaign(owner: User) -> Campaign:
    campaign = Campaign.objects.filter(owner=owner, title="Review sentiment").first()
    if campaign is not None:
        return campaign
    campaign = campaign_create(
        owner=owner,
        title="Review sentiment",
        instructions="Is the review positive, negative or neutral?",
        task_type=TaskType.TEXT_CLASSIFICATION,
        label_schema=["positive", "negative", "neutral"],
        min_labels=2,
        max_labels=3,
        reward_per_label=TOKEN // 200,
        gold_ratio=0.1,
    )
    lines = ["text,gold_label"]
    for templates, label in ((POSITIVE, "positive"), (NEGATIVE, "negative"), (NEUTRAL, "neutral")):
        for template in templates:
            for thing in THINGS[:4]:
                lines.append(f'"{template.format(thing)}",{label if thing == "phone" else ""}')
    items_upload(
        campaign=campaign, text_file=SimpleUploadedFile("reviews.csv", "\n".join(lines).encode())
    )
    return campaign


def simulate_labels(
    campaign: Campaign,
    crowd: dict[User, float],
    rng: random.Random,
    *,
    at_least: int = 40,
    at_most: int = 200,
    check_every: int = 10,
) -> int:
    """Label as a small, mostly right crowd would, until the campaign trusts every one of them.

    Each worker takes next-task's items (gold ones mixed in at the campaign's `gold_ratio`) and
    answers right with its accuracy in `crowd`. In a campaign with gold items, rewards of a
    worker on probation are held pending (docs/quality.md, "Rewards"): so after `at_least` tasks
    each, the campaign is refitted every `check_every` tasks (the product's own refit, which
    judges workers on their gold answers until the campaign is calibrated) and the crowd stops
    once all of it is trusted, or after `at_most` tasks each. Returns the labels submitted.
    """
    done = 0
    ids = {worker.pk for worker in crowd}
    logging.getLogger("quality.services.refit").setLevel(logging.WARNING)  # a line per refit
    for task in range(1, at_most + 1):
        for worker, accuracy in crowd.items():
            assignment = task_lease_next(campaign=campaign, worker=worker)
            if assignment is None:
                continue
            truth = assignment.item.filename.split("-")[0]
            label = truth if rng.random() < accuracy else rng.choice(SHAPES)
            annotation_submit(
                worker=worker, item_id=assignment.item_id, label=label, duration_ms=1500
            )
            done += 1
        if task >= at_least and (task - at_least) % check_every == 0:
            campaign_refit(campaign_id=campaign.pk)
            statuses = worker_statuses(campaign_id=campaign.pk, worker_ids=ids)
            if all(status == WorkerStatus.TRUSTED for status in statuses.values()):
                break
    return done


def main() -> None:
    users = ensure_users()
    shapes = ensure_image_campaign(users["requester@kyodo.local"])
    ensure_text_campaign(users["requester@kyodo.local"])
    if campaign_label_count(campaign_id=shapes.pk) == 0:
        random.seed(11)  # next-task draws its gold items from the module RNG: the same every time
        crowd = {users[email]: accuracy for email, accuracy in CROWD.items()}
        simulate_labels(shapes, crowd, rng=random.Random(11))
    print(f"seeded: {Campaign.objects.count()} campaigns, {Item.objects.count()} items")
    for skill in WorkerSkill.objects.filter(
        campaign_id=shapes.pk, worker__email__in=CROWD
    ).select_related("worker"):
        print(
            f"        {skill.worker.email}: {skill.answers} labels in {shapes.title}, "
            f"{skill.gold_passed}/{skill.gold_seen} gold right, {skill.status}"
        )
        if skill.status != WorkerStatus.TRUSTED:
            print("        (still on probation: their rewards stay pending)")


if __name__ == "__main__":
    main()
