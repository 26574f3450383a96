"""Sign-In with Ethereum (EIP-4361): parse, format and verify messages.

Pure functions, no database: the single use of a nonce is the service's job
(`accounts.services.siwe_nonce_consume`). The parser follows the EIP's ABNF line by line and
rejects anything else (a trailing newline, CRLF, fields out of order, unknown lines), because the
signature covers the exact text: a lenient parser would let two different texts mean the same
sign-in. Signatures are EIP-191 `personal_sign` signatures by an externally owned account,
recovered with eth-account; contract wallets (EIP-1271) are not supported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import is_checksum_address

from core.errors import ApplicationError

HEADER_SUFFIX = " wants you to sign in with your Ethereum account:"
VERSION = "1"
DEFAULT_STATEMENT = "Sign in to Kyodo with your Ethereum account."
# Far above any real message (nine fields, a statement, a few resources); bounds parsing work.
MAX_MESSAGE_CHARS = 8192
# How far ahead of the server's clock a client's `Issued At` may be.
CLOCK_SKEW = timedelta(seconds=60)

# RFC 3986 pieces, written out so that parsing stays a dependency-free, linear regex match.
_PCT = r"%[0-9A-Fa-f]{2}"
_UNRESERVED = r"A-Za-z0-9\-._~"
_SUB_DELIMS = r"!$&'()*+,;="
_SCHEME = r"[A-Za-z][A-Za-z0-9+\-.]*"
_USERINFO = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:]|{_PCT})*"
_HOST = rf"(?:\[[0-9A-Fa-f:.vV]+\]|(?:[{_UNRESERVED}{_SUB_DELIMS}]|{_PCT})+)"
_AUTHORITY = rf"(?:{_USERINFO}@)?{_HOST}(?::[0-9]*)?"
_URI = rf"{_SCHEME}:(?:[{_UNRESERVED}{_SUB_DELIMS}:/?#\[\]@]|{_PCT})*"
# RFC 3339 date-time: an offset is required, "T" and "Z" may be lower case.
_DATE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_TIME = r"[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
_DATE_TIME = rf"{_DATE}[Tt]{_TIME}(?:[Zz]|[+\-][0-9]{{2}}:[0-9]{{2}})"

_HEADER_RE = re.compile(
    rf"(?:(?P<scheme>{_SCHEME})://)?(?P<domain>{_AUTHORITY}){re.escape(HEADER_SUFFIX)}"
)
_ADDRESS_RE = re.compile(r"0x[0-9A-Fa-f]{40}")
_STATEMENT_RE = re.compile(rf"[{_UNRESERVED}{_SUB_DELIMS}:/?#\[\]@ ]*")
_URI_RE = re.compile(_URI)
_CHAIN_ID_RE = re.compile(r"[0-9]{1,78}")  # uint256 has at most 78 decimal digits
_NONCE_RE = re.compile(r"[A-Za-z0-9]{8,}")
_DATE_TIME_RE = re.compile(_DATE_TIME)
_REQUEST_ID_RE = re.compile(rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:@]|{_PCT})*")
_SIGNATURE_RE = re.compile(r"0x[0-9A-Fa-f]{130}")


class SiweError(ApplicationError):
    """A sign-in message or signature that must be refused. Codes are listed in docs/auth.md."""

    default_code = "siwe_malformed"


def _malformed(reason: str) -> SiweError:
    return SiweError(f"not a valid EIP-4361 message: {reason}", code="siwe_malformed")


@dataclass(frozen=True)
class SiweMessage:
    domain: str
    address: str
    uri: str
    chain_id: int
    nonce: str
    issued_at: datetime
    statement: str | None = None
    version: str = VERSION
    scheme: str | None = None
    expiration_time: datetime | None = None
    not_before: datetime | None = None
    request_id: str | None = None
    resources: tuple[str, ...] = ()


def _format_time(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("EIP-4361 times must be timezone-aware")
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def format_message(message: SiweMessage) -> str:
    """The exact text a wallet signs for `message` (the inverse of `parse_message`)."""
    prefix = f"{message.scheme}://" if message.scheme else ""
    lines = [f"{prefix}{message.domain}{HEADER_SUFFIX}", message.address, ""]
    if message.statement is not None:
        lines.append(message.statement)
    lines += [
        "",
        f"URI: {message.uri}",
        f"Version: {message.version}",
        f"Chain ID: {message.chain_id}",
        f"Nonce: {message.nonce}",
        f"Issued At: {_format_time(message.issued_at)}",
    ]
    if message.expiration_time is not None:
        lines.append(f"Expiration Time: {_format_time(message.expiration_time)}")
    if message.not_before is not None:
        lines.append(f"Not Before: {_format_time(message.not_before)}")
    if message.request_id is not None:
        lines.append(f"Request ID: {message.request_id}")
    if message.resources:
        lines.append("Resources:")
        lines += [f"- {resource}" for resource in message.resources]
    return "\n".join(lines)


class _Lines:
    """A cursor over the message's lines; every field is read in the ABNF's order."""

    def __init__(self, text: str) -> None:
        self.lines = text.split("\n")
        self.pos = 0

    def peek(self) -> str | None:
        return self.lines[self.pos] if self.pos < len(self.lines) else None

    def take(self, what: str) -> str:
        line = self.peek()
        if line is None:
            raise _malformed(f"missing {what}")
        self.pos += 1
        return line

    def field(self, label: str, pattern: re.Pattern[str]) -> str:
        line = self.take(f"'{label}'")
        prefix = f"{label}: "
        if not line.startswith(prefix):
            raise _malformed(f"expected '{prefix}...' on line {self.pos}")
        value = line[len(prefix) :]
        if not pattern.fullmatch(value):
            raise _malformed(f"invalid {label}")
        return value

    def optional_field(self, label: str, pattern: re.Pattern[str]) -> str | None:
        line = self.peek()
        if line is None or not line.startswith(f"{label}: "):
            return None
        return self.field(label, pattern)


def _parse_time(value: str, label: str) -> datetime:
    try:
        return datetime.fromisoformat(value.upper())
    except ValueError as exc:
        raise _malformed(f"invalid {label}") from exc


def _parse_statement(lines: _Lines) -> str | None:
    """`[ statement LF ] LF` after the blank line that follows the address."""
    if lines.take("blank line after the address") != "":
        raise _malformed("expected a blank line after the address")
    first = lines.take("statement or blank line")
    if first == "" and lines.peek() == "":
        lines.pos += 1  # an empty statement: the ABNF allows it
        return ""
    if first == "":
        return None
    if not _STATEMENT_RE.fullmatch(first):
        raise _malformed("the statement has characters EIP-4361 does not allow")
    if lines.take("blank line after the statement") != "":
        raise _malformed("expected a blank line after the statement")
    return first


def parse_message(text: str) -> SiweMessage:
    """Parse an EIP-4361 message strictly; raise `SiweError("siwe_malformed")` otherwise."""
    if len(text) > MAX_MESSAGE_CHARS:
        raise _malformed(f"longer than {MAX_MESSAGE_CHARS} characters")
    if "\r" in text:
        raise _malformed("lines must end with LF, not CRLF")
    lines = _Lines(text)
    header = _HEADER_RE.fullmatch(lines.take("header"))
    if header is None:
        raise _malformed(f"the first line must be '<domain>{HEADER_SUFFIX}'")
    address = lines.take("address")
    if not _ADDRESS_RE.fullmatch(address):
        raise _malformed("the second line must be a 0x-prefixed 20-byte hex address")
    statement = _parse_statement(lines)
    uri = lines.field("URI", _URI_RE)
    version = lines.field("Version", re.compile(r"[0-9]+"))
    if version != VERSION:
        raise _malformed(f"unsupported version {version} (only {VERSION})")
    chain_id = int(lines.field("Chain ID", _CHAIN_ID_RE))
    nonce = lines.field("Nonce", _NONCE_RE)
    issued_at = _parse_time(lines.field("Issued At", _DATE_TIME_RE), "Issued At")
    expiration = lines.optional_field("Expiration Time", _DATE_TIME_RE)
    not_before = lines.optional_field("Not Before", _DATE_TIME_RE)
    request_id = lines.optional_field("Request ID", _REQUEST_ID_RE)
    resources: list[str] = []
    if lines.peek() == "Resources:":
        lines.pos += 1
        while (line := lines.peek()) is not None:
            if not (line.startswith("- ") and _URI_RE.fullmatch(line[2:])):
                raise _malformed(f"invalid resource on line {lines.pos + 1}")
            resources.append(line[2:])
            lines.pos += 1
    if lines.peek() is not None:
        raise _malformed(f"unexpected text on line {lines.pos + 1}")
    return SiweMessage(
        scheme=header["scheme"],
        domain=header["domain"],
        address=address,
        statement=statement,
        uri=uri,
        version=version,
        chain_id=chain_id,
        nonce=nonce,
        issued_at=issued_at,
        expiration_time=_parse_time(expiration, "Expiration Time") if expiration else None,
        not_before=_parse_time(not_before, "Not Before") if not_before else None,
        request_id=request_id,
        resources=tuple(resources),
    )


def recover_signer(text: str, signature: str) -> str:
    """The checksummed address whose key made this EIP-191 signature of `text`."""
    if not _SIGNATURE_RE.fullmatch(signature):
        raise SiweError(
            "the signature must be 0x followed by 65 bytes in hex", code="siwe_bad_signature"
        )
    try:
        signer: str = Account.recover_message(
            encode_defunct(text=text), signature=bytes.fromhex(signature[2:])
        )
    except Exception as exc:  # eth-keys/eth-utils raise several unrelated types for bad (v, r, s)
        raise SiweError("the signature is not valid", code="siwe_bad_signature") from exc
    return signer


def _uri_matches(uri: str, expected: str) -> bool:
    """Same scheme and authority, and a path at or under the expected one."""
    got, want = urlsplit(uri), urlsplit(expected)
    if (got.scheme.lower(), got.netloc.lower()) != (want.scheme.lower(), want.netloc.lower()):
        return False
    base = want.path.rstrip("/")
    return got.path == base or got.path.startswith(base + "/")


def _check_binding(message: SiweMessage, *, domain: str, uri: str, chain_id: int) -> None:
    if message.domain != domain:
        raise SiweError(
            f"the message is for {message.domain!r}, not {domain!r}", code="siwe_wrong_domain"
        )
    if message.scheme is not None and message.scheme.lower() != urlsplit(uri).scheme.lower():
        raise SiweError(
            f"the message's scheme {message.scheme!r} is not this site's", code="siwe_wrong_domain"
        )
    if not _uri_matches(message.uri, uri):
        raise SiweError(f"the message's URI must be under {uri!r}", code="siwe_wrong_uri")
    if message.chain_id != chain_id:
        raise SiweError(
            f"the message is for chain {message.chain_id}, not {chain_id}",
            code="siwe_wrong_chain",
        )


def _check_times(message: SiweMessage, *, now: datetime) -> None:
    if message.issued_at > now + CLOCK_SKEW:
        raise SiweError("the message is issued in the future", code="siwe_not_yet_valid")
    if message.not_before is not None and message.not_before > now:
        raise SiweError("the message is not valid yet", code="siwe_not_yet_valid")
    if message.expiration_time is not None and message.expiration_time <= now:
        raise SiweError("the message has expired", code="siwe_expired")


def verify_message(
    text: str, signature: str, *, domain: str, uri: str, chain_id: int, now: datetime
) -> SiweMessage:
    """Everything but the nonce: syntax, checksum, binding to this site, times, signer."""
    message = parse_message(text)
    if not is_checksum_address(message.address):
        raise _malformed("the address must be EIP-55 checksummed")
    _check_binding(message, domain=domain, uri=uri, chain_id=chain_id)
    _check_times(message, now=now)
    if recover_signer(text, signature) != message.address:
        raise SiweError(
            "the signature was not made by the message's address", code="siwe_bad_signature"
        )
    return message
