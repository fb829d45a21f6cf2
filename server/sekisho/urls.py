"""Which URLs may carry keys and tokens: https anywhere, plain http only on loopback. Standard
library only, so the SDKs (sekisho.verify's JWKS client) and the config share one rule."""

import ipaddress
from urllib.parse import urlsplit

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback_host(host: str) -> bool:
    """True for localhost and any address in 127.0.0.0/8 or ::1."""
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_secure_url(url: str) -> bool:
    """https anywhere, or http on a loopback host (development and tests). A backslash in the
    authority is refused: urlsplit reads `http://evil\\@127.0.0.1/` as loopback, a WHATWG URL
    parser (browsers, many HTTP clients) as the host `evil`. A URL urlsplit cannot read
    (`https://[::1/keys`, an unclosed IPv6 literal, in an IdP's discovery document) is not one:
    its ValueError escaped JWKS discovery as a 500 instead of a refused document."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if "\\" in parts.netloc:
        return False
    if parts.scheme == "https" and parts.hostname:
        return True
    return (
        parts.scheme == "http" and bool(parts.hostname) and is_loopback_host(parts.hostname or "")
    )


def is_plain_http(url: str) -> bool:
    """True for an http (not https) URL; false for one urlsplit cannot read."""
    try:
        return urlsplit(url).scheme == "http"
    except ValueError:
        return False


def may_follow(url: str, named_by: str) -> bool:
    """Whether a URL a fetched document names (an IdP discovery document's `jwks_uri`) may be
    fetched: is_secure_url, and plain http (loopback) only when the document itself came over
    plain http, i.e. the operator configured a loopback development IdP, which the exposure
    check governs. A remote https document naming `http://localhost:8080/...` (a compromised
    IdP, or Keycloak without its frontend URL) would otherwise send key fetches to whatever
    local process holds that port, past the exposure check (red team session 12)."""
    if not is_secure_url(url):
        return False
    return not is_plain_http(url) or is_plain_http(named_by)


def require_secure_url(url: str, what: str) -> str:
    """`url` when is_secure_url (for the config models' validators). Raises: ValueError naming
    `what`."""
    if is_secure_url(url):
        return url
    raise ValueError(f"{what} must be an https URL (http is accepted only on loopback hosts)")
