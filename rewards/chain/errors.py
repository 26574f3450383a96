"""Contract reverts translated into domain errors by their 4-byte selector.

anvil (through web3's JSON-RPC provider) raises ``ContractCustomError``/``ContractLogicError`` with
the revert data as hex; py-evm (through ``EthereumTesterProvider``) raises eth-tester's
``TransactionFailed`` whose message embeds the revert bytes. Callers never look at either class:
:func:`reverts_translated` turns both into one :class:`ContractRevert` that carries the selector,
the error's name from the compiled ABIs, and its decoded arguments.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Any

from eth_abi import decode
from eth_abi.exceptions import DecodingError
from eth_utils import keccak, to_checksum_address

from core.errors import ApplicationError

from .artifacts import artifact_names, load_artifact

ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")  # Error(string), require(cond, "reason")
PANIC_SELECTOR = bytes.fromhex("4e487b71")  # Panic(uint256), failed assert / overflow
# Exception classes that carry revert data (matched by name: eth-tester is a test-only package).
_REVERT_EXCEPTIONS = frozenset({"ContractLogicError", "TransactionFailed"})
_BYTES_REPR = re.compile(r"""b(['"]).*\1""", re.DOTALL)


class ChainError(ApplicationError):
    """The chain could not do what was asked (revert, timeout, node unavailable)."""

    status_code = 503
    default_code = "chain_error"


class TransactionTimeout(ChainError):
    default_code = "chain_timeout"


class ContractRevert(ChainError):
    """A contract call or transaction reverted; ``error_name``/``args`` come from the ABIs."""

    status_code = 409
    default_code = "contract_revert"

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.selector: str | None = "0x" + data[:4].hex() if len(data) >= 4 else None
        spec = error_registry().get(data[:4]) if len(data) >= 4 else None
        self.error_name = spec.name if spec else "UnknownRevert"
        self.args_by_name: dict[str, Any] = spec.decode(data) if spec else {}
        # claimMany's ClaimRejected(index, reason) wraps the error of the entry that failed.
        self.index: int | None = None
        self.inner: ContractRevert | None = None
        if self.error_name == "ClaimRejected" and "reason" in self.args_by_name:
            self.index = int(self.args_by_name["index"])
            self.inner = ContractRevert(bytes.fromhex(self.args_by_name["reason"][2:]))
        shown = ", ".join(f"{k}={v!r}" for k, v in self.args_by_name.items())
        super().__init__(
            f"contract reverted: {self.error_name}({shown})",
            code=_snake(self.error_name) if spec else self.default_code,
            extra={"selector": self.selector, "error": self.error_name, "args": self.args_by_name},
        )


@dataclass(frozen=True)
class ErrorSpec:
    name: str
    selector: bytes
    types: tuple[str, ...]
    arg_names: tuple[str, ...]

    @property
    def signature(self) -> str:
        return f"{self.name}({','.join(self.types)})"

    def decode(self, data: bytes) -> dict[str, Any]:
        try:
            values = decode(list(self.types), data[4:])
        except DecodingError:
            return {}
        return {
            name or f"arg{i}": _plain(kind, value)
            for i, (name, kind, value) in enumerate(
                zip(self.arg_names, self.types, values, strict=True)
            )
        }


def _plain(kind: str, value: Any) -> Any:
    if kind == "address":
        return to_checksum_address(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return value


def _canonical_type(param: dict[str, Any]) -> str:
    kind: str = param["type"]
    if kind.startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in param["components"])
        return f"({inner}){kind[len('tuple') :]}"
    return kind


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def _spec(name: str, inputs: list[dict[str, Any]]) -> ErrorSpec:
    types = tuple(_canonical_type(p) for p in inputs)
    selector = keccak(text=f"{name}({','.join(types)})")[:4]
    return ErrorSpec(name, bytes(selector), types, tuple(p.get("name", "") for p in inputs))


@cache
def error_registry() -> dict[bytes, ErrorSpec]:
    """Every custom error in every compiled artifact, plus ``Error(string)`` and ``Panic``."""
    registry = {
        ERROR_STRING_SELECTOR: ErrorSpec("Error", ERROR_STRING_SELECTOR, ("string",), ("message",)),
        PANIC_SELECTOR: ErrorSpec("Panic", PANIC_SELECTOR, ("uint256",), ("code",)),
    }
    for name in artifact_names():
        for entry in load_artifact(name).abi:
            if entry["type"] == "error":
                spec = _spec(entry["name"], entry["inputs"])
                known = registry.setdefault(spec.selector, spec)
                if known.signature != spec.signature:  # pragma: no cover - a 4-byte collision
                    raise RuntimeError(f"selector clash: {known.signature} / {spec.signature}")
    return registry


def error_selector(name: str) -> str:
    """``0x``-prefixed selector of the custom error called ``name`` in the compiled ABIs."""
    for spec in error_registry().values():
        if spec.name == name:
            return "0x" + spec.selector.hex()
    raise KeyError(f"no error named {name!r} in contracts/build")


def _data_from(value: Any) -> bytes | None:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if not isinstance(value, str):
        return None
    if re.fullmatch(r"0x(?:[0-9a-fA-F]{2})*", value):
        return bytes.fromhex(value[2:])
    match = _BYTES_REPR.search(value)
    if match:  # eth-tester: "execution reverted: b'%C\\N...'"
        try:
            parsed = ast.literal_eval(match.group(0))
        except (ValueError, SyntaxError):
            return None
        return parsed if isinstance(parsed, bytes) else None
    prefix = "execution reverted: "
    if value.startswith(prefix):  # eth-tester decoded an Error(string) for us; re-encode it
        from eth_abi import encode

        return ERROR_STRING_SELECTOR + encode(["string"], [value[len(prefix) :]])
    return None


def revert_data(exc: BaseException) -> bytes | None:
    """The revert data carried by a revert exception (or one it wraps), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _REVERT_EXCEPTIONS & {cls.__name__ for cls in type(current).__mro__}:
            for candidate in (getattr(current, "data", None), *current.args):
                data = _data_from(candidate)
                if data is not None:
                    return data
        current = current.__cause__ or current.__context__
    return None


def translate_revert(exc: BaseException) -> ContractRevert | None:
    data = revert_data(exc)
    return None if data is None else ContractRevert(data)


@contextmanager
def reverts_translated() -> Iterator[None]:
    """Re-raise any revert inside the block as :class:`ContractRevert`."""
    try:
        yield
    except ContractRevert:
        raise
    except Exception as exc:
        translated = translate_revert(exc)
        if translated is None:
            raise
        raise translated from exc
