"""Email addresses: strict parsing of ``addr`` and ``Display Name <addr>`` forms."""

import re
from dataclasses import dataclass

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\ufffe\uffff]")
MAX_ADDRESS_LENGTH = 320


class AddressError(ValueError):
    """A string that is not a valid mailbox; the message names no part of the input."""


@dataclass(frozen=True, slots=True)
class Mailbox:
    """A mailbox: an optional display name (any Unicode) and an ASCII address."""

    name: str
    addr: str

    @property
    def domain(self) -> str:
        """The address's domain."""
        return self.addr.rpartition("@")[2]


def _domain(raw: str) -> str:
    try:
        ascii_domain = raw.encode("idna").decode("ascii") if not raw.isascii() else raw
    except UnicodeError:
        raise AddressError("the domain is not a valid internationalised domain name") from None
    ascii_domain = ascii_domain.lower()
    if len(ascii_domain) > 253 or not _DOMAIN.fullmatch(ascii_domain):
        raise AddressError("the domain is not valid")
    return ascii_domain


def parse_addr(raw: str) -> str:
    """Validate a bare address ``local@domain``; returns it with the domain in ASCII form."""
    local, at, domain = raw.rpartition("@")
    if not at or not local or not domain:
        raise AddressError("an address needs the form local@domain")
    if len(local) > 64 or not _LOCAL.fullmatch(local):
        raise AddressError("the local part is not valid")
    return f"{local}@{_domain(domain)}"


def parse_mailbox(raw: str) -> Mailbox:
    """Parse ``addr``, ``Name <addr>`` or ``"Quoted, Name" <addr>``."""
    if len(raw) > MAX_ADDRESS_LENGTH:
        raise AddressError(f"an address is at most {MAX_ADDRESS_LENGTH} characters")
    if _CONTROL.search(raw):
        raise AddressError("control characters and line breaks are not allowed")
    text = raw.strip()
    if not text.endswith(">"):
        return Mailbox(name="", addr=parse_addr(text))
    name, bracket, addr = text[:-1].rpartition("<")
    if not bracket:
        raise AddressError("unbalanced angle brackets")
    name = name.strip()
    if len(name) >= 2 and name[0] == '"' and name[-1] == '"':
        name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if "<" in name or ">" in name:
        raise AddressError("unbalanced angle brackets")
    return Mailbox(name=name, addr=parse_addr(addr.strip()))
