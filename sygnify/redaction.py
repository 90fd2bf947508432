"""Secrets masked in log records: one :class:`RedactingFilter`, installed while sygnify holds a secret.

SDKs log what they send at DEBUG (and some at INFO): botocore the ``X-Amz-Security-Token``
header, urllib3 an Azure SAS URL with its ``sig=``, httpx the URL of a request with its
``user:password@`` and ``?sig=``. :func:`redact` masks, in any text:

- the password of a URL's user info (``https://user:***@host``);
- the values of query (and form) parameters that carry credentials (:data:`SECRET_PARAMETERS`:
  ``sig``, ``signature``, ``token``, ``access_token``, ``X-Amz-Security-Token``,
  ``X-Amz-Signature``, ``X-Amz-Credential``, ``code``, ``key``...);
- credential headers (:data:`SECRET_HEADERS`: ``Authorization``, ``x-amz-security-token``,
  ``x-ms-*-key``...) written as ``Name: value`` or in a dict or tuple repr, ``Bearer``
  tokens, and the keys of connection strings (``AccountKey=``, ``Password=``...);
- every secret value sygnify holds (:func:`hold_secret`): each ``SecretStr`` of a validated
  config (:func:`sygnify.config.validate_config`), the credentials in a model backend's URLs,
  a webhook URL. Values shorter than :data:`MIN_SECRET_LENGTH` are left to the patterns
  above, so that a short password does not blank out every word it happens to spell.

::

    >>> redact("GET https://u:pw@h.example/x?sv=2024&sig=abc%2Fd&se=1 200")
    'GET https://u:***@h.example/x?sv=2024&sig=***&se=1 200'
    >>> redact("headers={'Authorization': b'AWS4-HMAC-SHA256 Credential=A/1', 'Host': 'h'}")
    "headers={'Authorization': b'***', 'Host': 'h'}"
    >>> hold_secret("s3cr3t-value")
    >>> redact("token s3cr3t-value refused")
    'token *** refused'

Holding a secret installs the filter (:func:`install`) on the loggers of :data:`SDK_LOGGERS`
and their children. A filter added to a logger does not see records its child loggers
propagate (``botocore.endpoint`` logs, not ``botocore``), and handlers are the
application's, added before or after sygnify starts, so the filter runs where every record
is made instead: :func:`install` wraps the log record factory
(:func:`logging.setLogRecordFactory`), keeping the one that was there, and redacts the
records of those loggers as they are created, before any handler, formatter or
propagation. It is installed once, and stays for the life of the process, as the secrets
do (logging is process-wide). Records of other loggers are left alone; add a
:class:`RedactingFilter` to a handler to mask them too.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any

__all__ = [
    "MASK",
    "MIN_SECRET_LENGTH",
    "SDK_LOGGERS",
    "SECRET_FIELDS",
    "SECRET_HEADERS",
    "SECRET_PARAMETERS",
    "RedactingFilter",
    "hold_secret",
    "hold_url_secrets",
    "install",
    "installed",
    "redact",
    "redact_url",
]

#: What a secret is replaced with.
MASK = "***"
#: Held values shorter than this are not masked on their own (the patterns still apply).
MIN_SECRET_LENGTH = 6

#: Loggers (and their children) whose records are redacted once sygnify holds a secret.
SDK_LOGGERS: tuple[str, ...] = (
    "sygnify",
    "botocore",
    "boto3",
    "s3transfer",
    "aiobotocore",
    "urllib3",
    "requests",
    "httpx",
    "httpcore",
    "azure",
    "msal",
    "google",
    "snowflake",
    "pymongo",
)

#: Query and form parameters whose values are credentials (compared case-insensitively).
SECRET_PARAMETERS: tuple[str, ...] = (
    "sig",
    "signature",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "code",
    "key",
    "api_key",
    "api-key",
    "apikey",
    "password",
    "secret",
    "sas",
    "sas_token",
    "x-amz-security-token",
    "x-amz-signature",
    "x-amz-credential",
    "x-goog-signature",
    "x-goog-credential",
)

#: Headers whose values are credentials (compared case-insensitively; regular expressions).
SECRET_HEADERS: tuple[str, ...] = (
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-amz-security-token",
    r"x-ms-[a-z0-9-]*key[a-z0-9-]*",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "ocp-apim-subscription-key",
    "x-functions-key",
    "x-auth-token",
    r"x-amz-[a-z-]*customer-key[a-z0-9-]*",
)

#: Keys of dicts and JSON objects, and XML elements, whose values are credentials (an SDK's
#: parameters, an STS or OAuth answer): the headers above and these. ``key`` and ``code``
#: are not among them: an object's ``Key`` and an error's ``Code`` are what a log is for.
SECRET_FIELDS: tuple[str, ...] = (
    *SECRET_HEADERS,
    "access_?token",
    "refresh_?token",
    "id_?token",
    "session_?token",
    "security_?token",
    "token",
    "secret_?access_?key",
    "account_?key",
    "client_?secret",
    "private_?key",
    "credentials_?json",
    "sas_?token",
    "sse_?customer_?key",
    "api_?key",
    "password",
    "secret",
    "sig",
)

_PARAMS = "|".join(re.escape(name) for name in SECRET_PARAMETERS)
_HEADERS = "|".join(SECRET_HEADERS)
_FIELDS = "|".join(SECRET_FIELDS)
#: (pattern, replacement) pairs; each keeps what names the secret and masks the value.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # 'Authorization': b'...' / ("authorization", "...") / "SessionToken": "..." in reprs, JSON
    (
        re.compile(
            rf"""(?<![\w-])(b?(['"])(?:{_FIELDS})\2\s*[:,]\s*b?(['"]))(?:\\.|(?!\3).)*\3""",
            re.IGNORECASE,
        ),
        rf"\1{MASK}\3",
    ),
    # <SessionToken>...</SessionToken> in an XML answer (STS AssumeRole)
    (re.compile(rf"(<((?:{_FIELDS}))>)[^<]*(</\2>)", re.IGNORECASE), rf"\1{MASK}\3"),
    # Authorization: ... and x-amz-security-token:... lines (HTTP dumps, canonical requests)
    (
        re.compile(rf"(?<![\w-])((?:{_HEADERS})[ \t]*:[ \t]*)(?![ \t]*['\"])[^\r\n]+", re.IGNORECASE),
        rf"\1{MASK}",
    ),
    # scheme://user:password@host
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s/:@?#'\"]*:)[^\s/@?#'\"]+(?=@)", re.IGNORECASE), rf"\1{MASK}"),
    # ?sig=... &X-Amz-Security-Token=...
    (re.compile(rf"([?&;](?:{_PARAMS})=)[^&#\s'\"<>]+", re.IGNORECASE), rf"\1{MASK}"),
    # AccountKey=...; SharedAccessSignature=...; Password=... in connection strings
    (
        re.compile(
            r"((?:^|(?<=[;\s'\"]))(?:AccountKey|SharedAccessKey|SharedAccessSignature|Password|Pwd)=)[^;\s'\"]+",
            re.IGNORECASE,
        ),
        rf"\1{MASK}",
    ),
    (re.compile(r"(\bBearer\s+)[A-Za-z0-9._~+/-]+=*", re.IGNORECASE), rf"\1{MASK}"),
    # botocore.auth's "Signature:\n<hex>" and "Signature=<hex>" outside a header
    (re.compile(r"(\bSignature[=:]\s*)[0-9a-f]{16,}", re.IGNORECASE), rf"\1{MASK}"),
)


class _Held:
    """The secret values held, as one compiled alternation (swapped whole, read without a lock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.shown: dict[str, str] = {}
        self.pattern: re.Pattern[str] | None = None

    def add(self, value: str, shown: str) -> bool:
        forms = {value, urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value, safe="")}
        with self.lock:
            new = {form for form in forms if form not in self.shown}
            if not new:
                return False
            for form in new:
                self.shown[form] = shown
            ordered = sorted(self.shown, key=len, reverse=True)  # the longest match wins
            self.pattern = re.compile("|".join(re.escape(form) for form in ordered))
            return True

    def sub(self, text: str) -> str:
        pattern, shown = self.pattern, self.shown
        if pattern is None:
            return text
        return pattern.sub(lambda match: shown.get(match.group(0), MASK), text)


_HELD = _Held()  # process-wide like logging itself: a record may come from any thread or library


def redact(text: str) -> str:
    """``text`` with every secret this module knows masked (see the module docstring).

    >>> redact("POST https://kserve.example/v2/models/m/infer?api-version=2 user=me")
    'POST https://kserve.example/v2/models/m/infer?api-version=2 user=me'
    >>> redact("x-amz-security-token:FwoGZXIvYXdzEB\\nhost:s3.amazonaws.com")
    'x-amz-security-token:***\\nhost:s3.amazonaws.com'
    """
    text = _HELD.sub(text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_url(url: str, *, path: bool = True) -> str:
    """``url`` with its password and credential parameters masked; only its origin if not ``path``.

    ``path=False`` is for URLs whose path is itself a credential (webhooks).

    >>> redact_url("https://bot:pw@hooks.example:8443/services/T0/B0/XyZ?token=abc&ok=1")
    'https://bot:***@hooks.example:8443/services/T0/B0/XyZ?token=***&ok=1'
    >>> redact_url("https://bot:pw@hooks.example:8443/services/T0/B0/XyZ?token=abc", path=False)
    'https://hooks.example:8443/...'
    """
    if path:
        return redact(url)
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}/..." if parts.scheme else "..."


def hold_secret(value: str | None, *, shown: str = MASK) -> None:
    """Mask ``value`` (and its percent-encoded forms) in every redacted record from now on.

    ``shown`` replaces it (default :data:`MASK`). A URL is also held by its parts
    (:func:`hold_url_secrets`). Installs the filter (:func:`install`) the first time.

    >>> hold_secret("correct-horse-battery")
    >>> redact("login with correct-horse-battery failed")
    'login with *** failed'
    """
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    _HELD.add(value, shown)
    if "://" in value:
        hold_url_secrets(value)
    install()


def hold_url_secrets(url: str, *, whole: bool = False) -> None:
    """Hold the credentials a URL carries: its password and credential parameters' values.

    ``whole=True`` also holds the whole URL and its path, shown as :func:`redact_url`
    with ``path=False`` (for webhook URLs, whose path is the credential). A URL without
    credentials holds nothing (and installs nothing) unless ``whole``.

    >>> hold_url_secrets("https://hooks.example/services/T7/B7/HoldDoc77", whole=True)
    >>> redact("POST https://hooks.example/services/T7/B7/HoldDoc77 failed")
    'POST https://hooks.example/... failed'
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # not a URL after all (an unbalanced "[" in the host): nothing to hold
        return
    secrets = [parts.password] if parts.password else []
    wanted = {name.lower() for name in SECRET_PARAMETERS}
    secrets += [
        value
        for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=False)
        if name.lower() in wanted
    ]
    if whole:
        origin = redact_url(url, path=False)
        if _HELD.add(url, origin):
            install()
        if len(parts.path) >= MIN_SECRET_LENGTH:
            _HELD.add(parts.path, "/...")
    for secret in secrets:
        hold_secret(secret)


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in a record's message, arguments and traceback.

    It never drops a record (``filter`` is always true). The message is formatted with its
    arguments and, where anything was masked, replaces them; a traceback is formatted and
    masked the same way (``exc_text``, with ``exc_info`` cleared so no formatter prints the
    unmasked one). Add it to a handler to mask records of loggers outside
    :data:`SDK_LOGGERS` too::

        >>> import io
        >>> stream = io.StringIO()
        >>> handler = logging.StreamHandler(stream)
        >>> handler.addFilter(RedactingFilter())
        >>> log = logging.getLogger("example.redaction")
        >>> log.addHandler(handler)
        >>> log.warning("calling %s", "https://u:pw@h.example/?sig=abc")
        >>> stream.getvalue()
        'calling https://u:***@h.example/?sig=***\\n'
        >>> log.removeHandler(handler)
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: let the handler report it as it would
            message = None
        if message is not None:
            masked = redact(message)
            if masked != message:
                record.msg, record.args = masked, ()
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            masked = redact(text)
            if masked != text:
                record.exc_text, record.exc_info = masked, None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FILTER = RedactingFilter()
_INSTALL_LOCK = threading.Lock()
_LOGGERS: set[str] = set(SDK_LOGGERS)


def _covered(name: str) -> bool:
    while True:
        if name in _LOGGERS:
            return True
        name, dot, _ = name.rpartition(".")
        if not dot:
            return False


class _RedactingFactory:
    """The record factory that redacts records of the covered loggers as they are made."""

    def __init__(self, inner: Callable[..., logging.LogRecord]) -> None:
        self.inner = inner

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.inner(*args, **kwargs)
        if _covered(record.name):
            _FILTER.filter(record)
        return record


def installed() -> bool:
    """Whether the redacting record factory is in place (it is once sygnify holds a secret).

    >>> hold_secret("another-secret-value"); installed()
    True
    """
    return isinstance(logging.getLogRecordFactory(), _RedactingFactory)


def install(loggers: Iterable[str] = ()) -> None:
    """Redact the records of :data:`SDK_LOGGERS` (and ``loggers``), and their children, from now on.

    Idempotent: the record factory is wrapped once (a factory set later by someone else
    that does not call ours is wrapped again on the next call).

    >>> install(["my_app.http"]); installed()
    True
    """
    with _INSTALL_LOCK:
        _LOGGERS.update(loggers)
        current = logging.getLogRecordFactory()
        if not isinstance(current, _RedactingFactory):
            logging.setLogRecordFactory(_RedactingFactory(current))
