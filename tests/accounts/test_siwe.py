"""Sign-In with Ethereum: the message grammar, the checks, nonces, sign-in and wallet linking."""

from __future__ import annotations

import dataclasses
import functools
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import IntegrityError, connections
from django.utils import timezone
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from rest_framework.test import APIClient

from accounts.admin import UserChangeForm
from accounts.models import Role, SiweNonce, User
from accounts.services import NONCE_PURGE_BATCH, siwe_nonce_consume, siwe_nonce_issue
from accounts.siwe import SiweError, SiweMessage, format_message, parse_message, verify_message
from tests.accounts.factories import SiweNonceFactory, UserFactory
from tests.conftest import client_for

NONCE_URL = "/api/auth/siwe/nonce/"
VERIFY_URL = "/api/auth/siwe/verify/"
LINK_URL = "/api/auth/siwe/link/"


# Helpers.


def new_nonce(client: APIClient | None = None) -> str:
    response = (client or APIClient()).get(NONCE_URL)
    assert response.status_code == 200
    return str(response.json()["nonce"])


def siwe_for(account: LocalAccount, nonce: str, **changes: Any) -> SiweMessage:
    """A message this site accepts, for `account`, with `changes` applied."""
    message = SiweMessage(
        domain=settings.KYODO_SIWE_DOMAIN,
        address=account.address,
        statement="Sign in to Kyodo with your Ethereum account.",
        uri=settings.KYODO_SIWE_URI,
        chain_id=settings.KYODO_CHAIN_ID,
        nonce=nonce,
        issued_at=timezone.now(),
    )
    return dataclasses.replace(message, **changes)


def sign(account: LocalAccount, text: str) -> str:
    signed = account.sign_message(encode_defunct(text=text))
    return "0x" + signed.signature.hex().removeprefix("0x")


def signed_body(account: LocalAccount, **changes: Any) -> dict[str, str]:
    nonce = changes.pop("nonce", None) or new_nonce()
    text = format_message(siwe_for(account, nonce, **changes))
    return {"message": text, "signature": sign(account, text)}


def verify(body: dict[str, str], client: APIClient | None = None) -> Any:
    return (client or APIClient()).post(VERIFY_URL, body, format="json")


def error_code(response: Any) -> str:
    return str(response.json()["error"]["code"])


def make_user(**fields: Any) -> User:
    user = UserFactory(**fields)
    assert isinstance(user, User)
    return user


@pytest.fixture
def wallet() -> LocalAccount:
    return Account.create()


pytestmark = pytest.mark.django_db


# The message grammar (no database).

EXAMPLE = (
    "127.0.0.1:8000 wants you to sign in with your Ethereum account:\n"
    "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266\n"
    "\n"
    "Sign in to Kyodo with your Ethereum account.\n"
    "\n"
    "URI: http://127.0.0.1:8000\n"
    "Version: 1\n"
    "Chain ID: 31337\n"
    "Nonce: 9f3c2a7e5b1d4c8fa0e6b2d4c7a9e1f3\n"
    "Issued At: 2026-11-28T08:30:00.000Z\n"
    "Expiration Time: 2026-11-28T08:35:00Z\n"
    "Not Before: 2026-11-28T08:30:00+00:00\n"
    "Request ID: login-42\n"
    "Resources:\n"
    "- ipfs://bafkreihzg3z2b4qviggswvajxfwmsbyndfvhbn3np4ilx4dqs66sfq6rxm\n"
    "- https://127.0.0.1:8000/terms"
)


@pytest.mark.django_db(False)
def test_parse_every_field() -> None:
    message = parse_message(EXAMPLE)
    assert message.domain == "127.0.0.1:8000"
    assert message.scheme is None
    assert message.address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert message.statement == "Sign in to Kyodo with your Ethereum account."
    assert message.uri == "http://127.0.0.1:8000"
    assert message.chain_id == 31337
    assert message.nonce == "9f3c2a7e5b1d4c8fa0e6b2d4c7a9e1f3"
    assert message.issued_at == datetime(2026, 11, 28, 8, 30, tzinfo=UTC)
    assert message.expiration_time == datetime(2026, 11, 28, 8, 35, tzinfo=UTC)
    assert message.not_before == message.issued_at
    assert message.request_id == "login-42"
    assert message.resources == (
        "ipfs://bafkreihzg3z2b4qviggswvajxfwmsbyndfvhbn3np4ilx4dqs66sfq6rxm",
        "https://127.0.0.1:8000/terms",
    )
    assert parse_message(format_message(message)) == message


@pytest.mark.django_db(False)
@pytest.mark.parametrize(
    "statement", [None, "", "I accept the terms: https://127.0.0.1:8000/terms (v2)."]
)
def test_format_parse_round_trip(statement: str | None) -> None:
    message = dataclasses.replace(
        parse_message(EXAMPLE), statement=statement, scheme="https", resources=()
    )
    text = format_message(message)
    if statement is None:
        assert "\n\n\nURI: " in text  # the ABNF keeps both blank lines when there is no statement
    assert parse_message(text) == message


def _broken(old: str, new: str) -> str:
    assert old in EXAMPLE
    return EXAMPLE.replace(old, new, 1)


MALFORMED = {
    "empty": "",
    "trailing newline": EXAMPLE + "\n",
    "CRLF line ends": EXAMPLE.replace("\n", "\r\n"),
    "no header": EXAMPLE.split("\n", 1)[1],
    "wrong header": _broken("wants you to sign in", "wants you to log in"),
    "domain with a space": _broken("127.0.0.1:8000 wants", "127.0.0.1 8000 wants"),
    "short address": _broken("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "0xf39Fd6e51aad"),
    "address without 0x": _broken(
        "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "f39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    ),
    "no blank line after address": _broken("92266\n\n", "92266\n"),
    "no blank line after statement": _broken("account.\n\nURI", "account.\nURI"),
    "newline in statement": _broken("Sign in to Kyodo", "Sign in\nto Kyodo"),
    "statement not ASCII": _broken("Sign in to Kyodo", "Sign in to Kyōdō"),
    "version 2": _broken("Version: 1", "Version: 2"),
    "no version": _broken("Version: 1\n", ""),
    "chain id not a number": _broken("Chain ID: 31337", "Chain ID: 0x7a69"),
    "short nonce": _broken("Nonce: 9f3c2a7e5b1d4c8fa0e6b2d4c7a9e1f3", "Nonce: abc123"),
    "nonce with a dash": _broken("Nonce: 9f3c2a7e", "Nonce: 9f3c-2a7e"),
    "date without offset": _broken("Issued At: 2026-11-28T08:30:00.000Z", "Issued At: 2026-11-28"),
    "impossible date": _broken("2026-11-28T08:30:00.000Z", "2026-13-28T08:30:00.000Z"),
    "fields out of order": _broken(
        "Expiration Time: 2026-11-28T08:35:00Z\nNot Before: 2026-11-28T08:30:00+00:00",
        "Not Before: 2026-11-28T08:30:00+00:00\nExpiration Time: 2026-11-28T08:35:00Z",
    ),
    "unknown field": _broken("Request ID: login-42", "Session: login-42"),
    "field without space": _broken("URI: http", "URI:http"),
    "URI without scheme": _broken("URI: http://127.0.0.1:8000", "URI: 127.0.0.1:8000"),
    "resource without dash": _broken("- https://127.0.0.1:8000/terms", "https://127.0.0.1/t"),
    "text after the last field": EXAMPLE.replace("\nResources:\n", "\nSee:\n"),
    "too long": EXAMPLE + "\n- https://x.example/" + "a" * 9000,
}


@pytest.mark.django_db(False)
@pytest.mark.parametrize("text", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_messages_are_refused(text: str) -> None:
    with pytest.raises(SiweError) as caught:
        parse_message(text)
    assert caught.value.code == "siwe_malformed"


@pytest.mark.django_db(False)
def test_verify_message_checks_in_isolation(wallet: LocalAccount) -> None:
    now = datetime(2026, 11, 28, 8, 30, tzinfo=UTC)
    message = siwe_for(wallet, "abcdefgh12345678", issued_at=now, uri="http://127.0.0.1:8000/login")
    text = format_message(message)
    site: dict[str, Any] = {
        "domain": "127.0.0.1:8000",
        "uri": "http://127.0.0.1:8000",
        "chain_id": 31337,
    }
    assert verify_message(text, sign(wallet, text), now=now, **site) == message

    def code(**overrides: Any) -> str:
        with pytest.raises(SiweError) as caught:
            verify_message(text, sign(wallet, text), **{"now": now, **site, **overrides})
        return caught.value.code

    assert code(domain="kyodo.example") == "siwe_wrong_domain"
    assert code(uri="https://127.0.0.1:8000") == "siwe_wrong_uri"
    assert code(uri="http://127.0.0.1:8000/app") == "siwe_wrong_uri"
    assert code(chain_id=1) == "siwe_wrong_chain"
    assert code(now=now - timedelta(minutes=5)) == "siwe_not_yet_valid"


@pytest.mark.django_db(False)
@pytest.mark.parametrize(
    ("uri", "ok"),
    [
        ("http://127.0.0.1:8000", True),
        ("http://127.0.0.1:8000/", True),
        ("http://127.0.0.1:8000/label/3?x=1", True),
        ("HTTP://127.0.0.1:8000/login", True),
        ("http://127.0.0.1:8001/", False),
        ("http://127.0.0.1:8000.evil.example/", False),
        ("http://evil.example/?http://127.0.0.1:8000", False),
    ],
)
def test_uri_must_be_on_this_site(wallet: LocalAccount, uri: str, ok: bool) -> None:
    now = timezone.now()
    text = format_message(siwe_for(wallet, "abcdefgh12345678", uri=uri, issued_at=now))
    site: dict[str, Any] = {
        "domain": settings.KYODO_SIWE_DOMAIN,
        "uri": "http://127.0.0.1:8000",
        "chain_id": settings.KYODO_CHAIN_ID,
    }
    if ok:
        verify_message(text, sign(wallet, text), now=now, **site)
        return
    with pytest.raises(SiweError) as caught:
        verify_message(text, sign(wallet, text), now=now, **site)
    assert caught.value.code == "siwe_wrong_uri"


# Nonces.


def test_nonce_endpoint_is_anonymous_and_names_what_to_sign() -> None:
    before = timezone.now()
    response = APIClient().get(NONCE_URL)
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert re.fullmatch(r"[0-9a-f]{32}", body["nonce"])  # 128 random bits, alphanumeric
    assert body["domain"] == settings.KYODO_SIWE_DOMAIN == "127.0.0.1:8000"
    assert body["uri"] == settings.KYODO_SIWE_URI == "http://127.0.0.1:8000"
    assert body["chain_id"] == settings.KYODO_CHAIN_ID == 31337
    assert body["statement"]
    expires_at = datetime.fromisoformat(body["expires_at"])
    lifetime = timedelta(seconds=settings.KYODO_SIWE_NONCE_SECONDS)
    assert before + lifetime <= expires_at <= timezone.now() + lifetime
    row = SiweNonce.objects.get(nonce=body["nonce"])
    assert row.used_at is None
    assert new_nonce() != body["nonce"]


def test_issuing_purges_a_batch_of_expired_nonces() -> None:
    past = timezone.now() - timedelta(hours=1)
    SiweNonce.objects.bulk_create(
        SiweNonceFactory.build_batch(NONCE_PURGE_BATCH + 5, expires_at=past)
    )
    live = siwe_nonce_issue()
    assert SiweNonce.objects.filter(expires_at__lt=timezone.now()).count() == 5
    siwe_nonce_issue()
    assert not SiweNonce.objects.filter(expires_at__lt=timezone.now()).exists()
    assert SiweNonce.objects.filter(pk=live.pk).exists()


def test_a_nonce_is_consumed_once() -> None:
    nonce = siwe_nonce_issue().nonce
    siwe_nonce_consume(nonce=nonce)
    with pytest.raises(SiweError, match="used already") as caught:
        siwe_nonce_consume(nonce=nonce)
    assert caught.value.code == "siwe_bad_nonce"


# Sign-in.


def test_new_wallet_signs_up_then_signs_in_to_the_same_account(wallet: LocalAccount) -> None:
    first = verify(signed_body(wallet))
    assert first.status_code == 200, first.json()
    user_json = first.json()["user"]
    assert user_json["wallet_address"] == wallet.address
    assert user_json["role"] == Role.CONTRIBUTOR
    user = User.objects.get(pk=user_json["id"])
    assert user.email == f"{wallet.address.lower()}@wallet.invalid"
    assert not user.has_usable_password()

    second = verify(signed_body(wallet))
    assert second.status_code == 200
    assert second.json()["user"]["id"] == user.pk
    assert second.json()["token"] == first.json()["token"]
    assert User.objects.count() == 1


def test_sign_in_token_and_session_both_work_on_me(wallet: LocalAccount) -> None:
    browser = APIClient()
    response = verify(signed_body(wallet), client=browser)
    assert response.status_code == 200
    # The browser that signed in has a session cookie.
    me = browser.get("/api/auth/me/")
    assert me.status_code == 200
    assert me.json()["wallet_address"] == wallet.address
    # Any client can use the token.
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert api.get("/api/auth/me/").json()["id"] == response.json()["user"]["id"]
    assert User.objects.get(pk=response.json()["user"]["id"]).last_login is not None


def test_replay_of_a_used_message_fails(wallet: LocalAccount) -> None:
    body = signed_body(wallet)
    assert verify(body).status_code == 200
    again = verify(body)
    assert again.status_code == 400
    assert error_code(again) == "siwe_bad_nonce"
    assert "used" in again.json()["error"]["message"]


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"domain": "evil.example"}, "siwe_wrong_domain"),
        ({"domain": "127.0.0.1:8001"}, "siwe_wrong_domain"),
        ({"scheme": "https"}, "siwe_wrong_domain"),
        ({"uri": "https://evil.example/login"}, "siwe_wrong_uri"),
        ({"chain_id": 1}, "siwe_wrong_chain"),
        # Times are offsets from now, resolved when the test runs.
        ({"expiration_time": timedelta(seconds=-1)}, "siwe_expired"),
        ({"not_before": timedelta(minutes=5)}, "siwe_not_yet_valid"),
        ({"issued_at": timedelta(minutes=5)}, "siwe_not_yet_valid"),
    ],
)
def test_a_message_for_another_site_chain_or_time_is_refused(
    wallet: LocalAccount, changes: dict[str, Any], code: str
) -> None:
    now = timezone.now()
    changes = {k: now + v if isinstance(v, timedelta) else v for k, v in changes.items()}
    nonce = new_nonce()
    response = verify(signed_body(wallet, nonce=nonce, **changes))
    assert response.status_code == 400
    assert error_code(response) == code
    assert not User.objects.exists()
    # A refused message does not spend the nonce: the wallet can sign a correct one with it.
    assert verify(signed_body(wallet, nonce=nonce)).status_code == 200


def test_times_within_bounds_are_accepted(wallet: LocalAccount) -> None:
    now = timezone.now()
    body = signed_body(
        wallet,
        issued_at=now + timedelta(seconds=20),  # a client clock slightly ahead
        not_before=now - timedelta(seconds=1),
        expiration_time=now + timedelta(minutes=5),
        request_id="r-1",
        resources=("https://127.0.0.1:8000/terms",),
        uri=settings.KYODO_SIWE_URI + "/login",
        scheme="http",
    )
    assert verify(body).status_code == 200


def test_expired_nonce_is_refused(wallet: LocalAccount) -> None:
    nonce = new_nonce()
    SiweNonce.objects.filter(nonce=nonce).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = verify(signed_body(wallet, nonce=nonce))
    assert response.status_code == 400
    assert error_code(response) == "siwe_bad_nonce"
    assert "expired" in response.json()["error"]["message"]


def test_unknown_nonce_is_refused(wallet: LocalAccount) -> None:
    response = verify(signed_body(wallet, nonce="madeUpByTheClient123"))
    assert response.status_code == 400
    assert error_code(response) == "siwe_bad_nonce"
    assert "unknown" in response.json()["error"]["message"]


def test_tampered_message_is_refused(wallet: LocalAccount) -> None:
    body = signed_body(wallet)
    body["message"] = body["message"].replace("Sign in to Kyodo", "Sign in to Kyodo!", 1)
    response = verify(body)
    assert response.status_code == 400
    assert error_code(response) == "siwe_bad_signature"
    assert not User.objects.exists()


def test_signature_by_another_key_is_refused(wallet: LocalAccount) -> None:
    body = signed_body(wallet)
    body["signature"] = sign(Account.create(), body["message"])
    response = verify(body)
    assert response.status_code == 400
    assert error_code(response) == "siwe_bad_signature"


@pytest.mark.parametrize(
    "signature",
    ["", "0x1234", "0x" + "zz" * 65, "0x" + "00" * 65, "0x" + "ff" * 65, "0x" + "11" * 64 + "05"],
)
def test_garbage_signatures_are_4xx(wallet: LocalAccount, signature: str) -> None:
    body = signed_body(wallet)
    body["signature"] = signature
    response = verify(body)
    assert response.status_code == 400
    assert error_code(response) in {"siwe_bad_signature", "blank"}


def test_non_checksummed_address_is_refused(wallet: LocalAccount) -> None:
    # An address whose checksum form has no capital letter is its own lowercase (a random
    # wallet's is, about once in 4,000 runs, (13/16)^40; seen in a fresh clone): draw another.
    while wallet.address == wallet.address.lower():
        wallet = Account.create()
    body = signed_body(wallet, address=wallet.address.lower())
    response = verify(body)  # the signature is good: only the checksum is missing
    assert response.status_code == 400
    assert error_code(response) == "siwe_malformed"
    assert "EIP-55" in response.json()["error"]["message"]


@pytest.mark.parametrize("text", list(MALFORMED.values())[1:5])
def test_malformed_message_is_a_400(wallet: LocalAccount, text: str) -> None:
    response = verify({"message": text, "signature": sign(wallet, text)})
    assert response.status_code == 400
    assert error_code(response) == "siwe_malformed"


def test_verify_input_is_strict_json(wallet: LocalAccount) -> None:
    body = signed_body(wallet)
    extra = APIClient().post(VERIFY_URL, {**body, "email": "x@example.com"}, format="json")
    assert extra.status_code == 400
    assert error_code(extra) == "unknown_field"
    # A form post (what another site could make a browser send) is not accepted.
    form = APIClient().post(VERIFY_URL, body)
    assert form.status_code == 415
    assert verify(body).status_code == 200  # the nonce was not spent by the refused requests


def test_disabled_wallet_account_cannot_sign_in(wallet: LocalAccount) -> None:
    make_user(wallet_address=wallet.address, is_active=False)
    response = verify(signed_body(wallet))
    assert response.status_code == 403
    assert error_code(response) == "account_disabled"


def test_wallet_found_whatever_its_stored_case(wallet: LocalAccount) -> None:
    user = make_user(wallet_address=wallet.address.lower())
    response = verify(signed_body(wallet))
    assert response.json()["user"]["id"] == user.pk


def test_placeholder_email_domain_cannot_be_registered(wallet: LocalAccount) -> None:
    response = APIClient().post(
        "/api/auth/register/",
        {"email": f"{wallet.address.lower()}@wallet.invalid", "password": "a-long-passphrase"},
        format="json",
    )
    assert response.status_code == 400
    assert error_code(response) == "email_reserved"


# Linking a wallet to an email account.


def test_email_account_links_a_wallet_then_signs_in_with_it(wallet: LocalAccount) -> None:
    user = make_user()
    response = client_for(user).post(LINK_URL, signed_body(wallet), format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["wallet_address"] == wallet.address
    user.refresh_from_db()
    assert user.wallet_address == wallet.address
    # Linking the same wallet again is a no-op.
    again = client_for(user).post(LINK_URL, signed_body(wallet), format="json")
    assert again.status_code == 200
    # Signing in with the wallet now opens the email account.
    signed_in = verify(signed_body(wallet))
    assert signed_in.json()["user"]["id"] == user.pk
    assert signed_in.json()["user"]["email"] == user.email
    assert User.objects.count() == 1


def test_linking_a_wallet_of_another_account_is_a_conflict(wallet: LocalAccount) -> None:
    assert verify(signed_body(wallet)).status_code == 200  # a wallet-only account owns it
    user = make_user()
    response = client_for(user).post(LINK_URL, signed_body(wallet), format="json")
    assert response.status_code == 409
    assert error_code(response) == "wallet_taken"
    user.refresh_from_db()
    assert user.wallet_address == ""


def test_an_account_with_a_wallet_cannot_switch_it(wallet: LocalAccount) -> None:
    user = make_user(wallet_address=Account.create().address)
    response = client_for(user).post(LINK_URL, signed_body(wallet), format="json")
    assert response.status_code == 409
    assert error_code(response) == "wallet_already_linked"


def test_link_checks_the_message_like_sign_in(wallet: LocalAccount) -> None:
    user = make_user()
    body = signed_body(wallet, chain_id=1)
    response = client_for(user).post(LINK_URL, body, format="json")
    assert response.status_code == 400
    assert error_code(response) == "siwe_wrong_chain"
    body = signed_body(wallet)
    body["signature"] = sign(Account.create(), body["message"])
    response = client_for(user).post(LINK_URL, body, format="json")
    assert error_code(response) == "siwe_bad_signature"
    user.refresh_from_db()
    assert user.wallet_address == ""


def test_link_needs_a_signed_in_user(wallet: LocalAccount) -> None:
    response = APIClient().post(LINK_URL, signed_body(wallet), format="json")
    assert response.status_code in (401, 403)
    assert error_code(response) == "not_authenticated"


# The wallet column.


def test_a_wallet_belongs_to_one_account_whatever_its_case(wallet: LocalAccount) -> None:
    make_user(wallet_address=wallet.address)
    make_user()
    make_user()  # many accounts without a wallet are fine
    with pytest.raises(IntegrityError):
        make_user(wallet_address=wallet.address.lower())


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("", ""),
        (
            "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266",
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
        ),
        ("0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266", None),  # a wrong checksum
        ("0x1234", None),
    ],
)
def test_admin_form_stores_checksummed_wallets(typed: str, stored: str | None) -> None:
    user = make_user()
    data = {
        "email": user.email,
        "role": user.role,
        "wallet_address": typed,
        "date_joined": user.date_joined,
        "is_active": True,
    }
    form = UserChangeForm(data=data, instance=user)
    if stored is None:
        assert not form.is_valid()
        assert "wallet_address" in form.errors
    else:
        assert form.is_valid(), form.errors
        assert form.cleaned_data["wallet_address"] == stored


# Real races: threads with connections of their own.

RACERS = 8


def _race(work: list[Callable[[], Any]]) -> list[Any]:
    """Run each callable in its own thread and connection, all released at once."""
    barrier = threading.Barrier(len(work))
    results: list[Any] = [None] * len(work)

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = work[i]()
        except Exception as exc:  # reported to the test, which asserts on it
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@pytest.mark.usefixtures("transactional_db")
def test_racing_replays_of_one_message_sign_in_once(wallet: LocalAccount) -> None:
    body = signed_body(wallet)
    statuses = _race([lambda: verify(body).status_code for _ in range(RACERS)])
    assert sorted(statuses) == [200] + [400] * (RACERS - 1)
    assert SiweNonce.objects.get(nonce=parse_message(body["message"]).nonce).used_at is not None


@pytest.mark.usefixtures("transactional_db")
def test_racing_first_sign_ins_of_one_wallet_make_one_account(wallet: LocalAccount) -> None:
    bodies = [signed_body(wallet) for _ in range(RACERS)]
    responses = _race([functools.partial(verify, b) for b in bodies])
    assert [r.status_code for r in responses] == [200] * RACERS
    assert len({r.json()["user"]["id"] for r in responses}) == 1
    assert User.objects.count() == 1


@pytest.mark.usefixtures("transactional_db")
def test_racing_links_of_one_wallet_link_it_once(wallet: LocalAccount) -> None:
    users = [make_user() for _ in range(RACERS)]
    bodies = [signed_body(wallet) for _ in users]

    def link(user: User, body: dict[str, str]) -> Any:
        return client_for(user).post(LINK_URL, body, format="json")

    responses = _race([functools.partial(link, u, b) for u, b in zip(users, bodies, strict=True)])
    assert sorted(r.status_code for r in responses) == [200] + [409] * (RACERS - 1)
    assert {error_code(r) for r in responses if r.status_code == 409} == {"wallet_taken"}
    assert User.objects.filter(wallet_address=wallet.address).count() == 1
