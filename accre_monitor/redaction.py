"""Keeping secrets out of every message, log line and file the program writes.

A password may hold any character, and operators do not always percent-escape it in a URL:
in `amqp://monitor:s3cr#t@mq1/` urllib takes `#` for the start of a fragment (and `/` for
the start of a path), then quotes pieces of the password in its errors ("Port could not be
cast to integer value as 's3cr'"). So nothing here parses a URL: the password is whatever
follows `scheme://user:` up to the last `@` of the URL, and it is hidden whatever it holds.
The same rule splits the credentials off a URL before a client sees it
(`split_credentials`), so no client error can quote a piece of the password either.

Secrets the process knows (values of config keys named like a secret, passwords in the
config's URLs, the same from `ACCRE_MONITOR_*` environment variables) are also replaced
wherever they appear in a text (`scrub`): a client's error message quoting one is caught.
Secrets shorter than `MIN_LENGTH` characters are left to the URL rule: replacing every `5`
of every message would leave nothing readable.

Cheap to import: plain Python only (no `re`, no urllib), as the command line imports it
when it logs something.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

MASK = "***"
MIN_LENGTH = 4
# a config key holding one of these, or ending in one of SECRET_ENDINGS, holds a secret
SECRET_WORDS = ("password", "passwd", "secret", "token", "api_key", "apikey", "webhook")
SECRET_ENDINGS = ("_key", "_pass")
ENV_PREFIX = "ACCRE_MONITOR_"
MAX_SOURCES = 16  # config files watched at once (a program reloading its config forever)
# characters that end a user name in a URL (it never holds them unescaped)
_NOT_IN_USER = frozenset("/?#@[] \t\r\n'\"<>,;")
_HEX = frozenset("0123456789abcdefABCDEF")
# characters kept as they are when a secret is percent-encoded (RFC 3986 unreserved)
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

_sources: list[Any] = []  # parsed config files whose secrets are looked for when needed
_remembered: set[str] = set()
_cache: tuple[tuple[str, ...], list[str]] | None = None  # (environment secrets, all)


def is_secret_key(key: str) -> bool:
    """Whether a config key holds a secret (`password`, `api_key`, `webhook_url`, `*_token`)."""
    key = key.lower().replace("-", "_")
    return any(word in key for word in SECRET_WORDS) or key.endswith(SECRET_ENDINGS)


# -- URLs, taken as text ---------------------------------------------------------------------


def _password_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Where the password of the URL whose `://` ends at `start` lies: (first, last + 1).

    `scheme://user:PASSWORD@host`: the user name runs to the first `:`; the password from
    there to the last `@` before `end`. None when there is no `user:` or no `@`.
    """
    colon = start
    while colon < end and text[colon] != ":":
        if text[colon] in _NOT_IN_USER:
            return None
        colon += 1
    if colon >= end:
        return None
    at = text.rfind("@", colon + 1, end)
    if at < 0:
        return None
    return colon + 1, at


def redact_url(url: str) -> str:
    """The URL with its password masked (`scheme://user:***@host/...`), safe to show.

    Works on the text as given: a password holding `#`, `/`, `@` or `%` is masked whole.
    A URL without a password is returned as it is.
    """
    start = url.find("://")
    if start < 0:
        return url
    span = _password_span(url, start + 3, len(url))
    if span is None:
        return url
    return url[: span[0]] + MASK + url[span[1] :]


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """(the URL without `user:password@`, the user name, the password), both percent-decoded;
    None for what the URL does not hold.

    The rule of `redact_url`: the password runs to the last `@`, so an unescaped `#`, `/` or
    `@` in it is kept in the password, never taken for the URL's fragment, path or host.
    """
    start = url.find("://")
    if start < 0:
        return url, None, None
    head = start + 3
    span = _password_span(url, head, len(url))
    if span is not None:
        user, password = url[head : span[0] - 1], url[span[0] : span[1]]
        return url[:head] + url[span[1] + 1 :], _unquote(user), _unquote(password)
    authority_end = len(url)
    for char in "/?#":
        found = url.find(char, head)
        if found >= 0:
            authority_end = min(authority_end, found)
    at = url.rfind("@", head, authority_end)
    if at < 0:
        return url, None, None
    return url[:head] + url[at + 1 :], _unquote(url[head:at]), None


def _unquote(text: str) -> str:
    """Percent-decoding as urllib's `unquote` does it (a `%` not followed by two hex digits
    stays as it is), without importing urllib."""
    if "%" not in text:
        return text
    data = bytearray()
    index = 0
    raw = text.encode("utf-8")
    while index < len(raw):
        byte = raw[index]
        if (
            byte == 0x25
            and index + 2 < len(raw)
            and chr(raw[index + 1]) in _HEX
            and chr(raw[index + 2]) in _HEX
        ):
            data.append(int(raw[index + 1 : index + 3], 16))
            index += 3
        else:
            data.append(byte)
            index += 1
    return data.decode("utf-8", "replace")


def quote(text: str) -> str:
    """Percent-encoding of everything but RFC 3986's unreserved characters: a user name or
    password put back into a URL for a client that reads it from there."""
    return "".join(
        char if char in _UNRESERVED else "".join(f"%{byte:02X}" for byte in char.encode())
        for char in text
    )


def with_credentials(url: str, user: str | None, password: str | None) -> str:
    """`url` (without credentials) with `user:password@` put in, both percent-encoded."""
    if user is None and password is None:
        return url
    scheme, _, rest = url.partition("://")
    userinfo = quote(user or "") + (f":{quote(password)}" if password is not None else "")
    return f"{scheme}://{userinfo}@{rest}"


# -- secrets known to the process ------------------------------------------------------------


def watch(data: Any) -> None:
    """Look for secrets in this parsed config when a text is next scrubbed (not now: a run
    that logs nothing never pays for it)."""
    global _cache
    if data and not any(source is data for source in _sources):
        _sources.append(data)
        del _sources[:-MAX_SOURCES]
        _cache = None


def forget() -> None:
    """Forget every secret remembered or watched (tests, and programs that reload)."""
    global _cache
    _sources.clear()
    _remembered.clear()
    _cache = None


def remember(*secrets: Any) -> None:
    """Hide these values (and their percent-encoded and -decoded forms) from now on; for a
    URL with a password, the password."""
    global _cache
    for secret in secrets:
        for form in _forms(secret):
            if form not in _remembered:
                _remembered.add(form)
                _cache = None


def remember_url(*urls: Any) -> None:
    """Hide the password of each URL (as written, and decoded) from now on."""
    remember(*(form for url in urls for form in _password_forms(url)))


def _password_forms(url: Any) -> list[str]:
    """A URL's password as written and decoded; none when it has no password."""
    start = url.find("://") if isinstance(url, str) else -1
    span = _password_span(url, start + 3, len(url)) if start > 0 else None
    if span is None:
        return []
    password = url[span[0] : span[1]]
    return [password, _unquote(password)]


def _forms(value: Any) -> list[str]:
    """The texts a secret may be shown as: itself, percent-decoded and -encoded; for a URL
    with a password, that password; for another URL, its path (a webhook's token: the URL
    is then shown as `https://host/***`)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return []
    text = str(value).strip()
    forms = {text, _unquote(text), quote(_unquote(text))}
    if "://" in text:
        bare = split_credentials(text)[0]
        path_start = bare.find("/", bare.find("://") + 3)
        if _password_forms(text):
            forms = {f for p in _password_forms(text) for f in (p, quote(_unquote(p)))}
        elif path_start > 0:  # the URL itself is the secret: its path and the token in it
            path = bare[path_start + 1 :]
            forms = {path, _unquote(path), quote(path), path.partition("?")[0]}
            forms.update(part for part in path.split("/") if len(part) > 8)
            forms.discard("services")
    return [form for form in forms if len(form) >= MIN_LENGTH]


def _from_config(data: Any, key: str = "") -> Iterable[str]:
    if isinstance(data, dict):
        for name, value in data.items():
            yield from _from_config(value, str(name))
    elif isinstance(data, list):
        for item in data:
            yield from _from_config(item, key)
    elif is_secret_key(key):
        yield from _forms(data)
    else:  # a URL that is no secret itself: its password only
        for password in _password_forms(data):
            yield from _forms(password)


def known_secrets() -> list[str]:
    """Every secret this process knows, longest first."""
    global _cache
    environ = tuple(
        value
        for name, value in os.environ.items()
        if name.startswith(ENV_PREFIX) and value and is_secret_key(name[len(ENV_PREFIX) :])
    )
    if _cache is None or _cache[0] != environ:
        found = set(_remembered)
        for source in _sources:
            found.update(_from_config(source))
        for value in environ:
            found.update(_forms(value))
        _cache = (environ, sorted(found, key=len, reverse=True))
    return _cache[1]


# -- texts -----------------------------------------------------------------------------------


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with the password of every URL in it masked, and every known secret (and the
    given `secrets`) replaced by `***`."""
    if not isinstance(text, str):
        text = str(text)
    if "://" in text:
        text = _scrub_urls(text)
    for secret in [*known_secrets(), *(s for s in secrets if s and len(s) >= MIN_LENGTH)]:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def _scrub_urls(text: str) -> str:
    """Mask the password of each `scheme://user:password@host` in free text. A URL ends at
    the next white space or the next `://`, so the password is what runs to the last `@`
    before either."""
    pieces = []
    done = 0
    search = 0
    while True:
        start = text.find("://", search)
        if start < 0:
            break
        head = start + 3
        end = len(text)
        following = text.find("://", head)
        if following >= 0:
            end = following
        for index in range(head, end):
            if text[index].isspace():
                end = index
                break
        span = _password_span(text, head, end)
        if span is not None:
            pieces += [text[done : span[0]], MASK]
            done = span[1]
        search = max(head, done)
    return "".join(pieces) + text[done:] if pieces else text


def scrub_all(value: Any) -> Any:
    """`value` with every string in it scrubbed (dicts, lists and tuples walked), for JSON
    documents built of messages."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {key: scrub_all(item) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub_all(item) for item in value]
    if isinstance(value, tuple):
        return tuple(scrub_all(item) for item in value)
    return value
