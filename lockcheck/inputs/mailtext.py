"""A mail whose body is transfer-encoded, made readable to annotate.

Notes are inserted under the lines a reply quotes; a quoted-printable or
base64 body has no such lines until it is decoded. So `annotate` decodes
the body of such a single-part mail, says so in its headers
(`Content-Transfer-Encoding: 8bit`, `charset=utf-8`), and works on that;
every other input is returned byte for byte.
"""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage

from lockcheck.errors import InputError

_BLANK_RE = re.compile(rb"\r?\n\r?\n")
_CTE_RE = re.compile(rb"^(Content-Transfer-Encoding:)[ \t]*[^\r\n]*", re.I | re.M)
_CHARSET_RE = re.compile(rb"(charset=)(\"?)[\w.:-]+\2", re.I)
ENCODED = ("base64", "quoted-printable")


def transfer_encoding(data: bytes) -> str:
    """The body's Content-Transfer-Encoding of a single-part mail ('' if none)."""
    m = _BLANK_RE.search(data)
    if m is None:
        return ""
    msg = email.message_from_bytes(data[: m.end()], policy=email.policy.default)
    if msg.is_multipart() or str(msg.get("Content-Type", "")).lower().startswith("multipart/"):
        return ""
    return str(msg.get("Content-Transfer-Encoding", "")).strip().lower()


def decoded_mail(data: bytes, origin: str) -> bytes:
    """`data` with a base64 or quoted-printable body decoded; else `data` itself."""
    if transfer_encoding(data) not in ENCODED:
        return data
    m = _BLANK_RE.search(data)
    assert m is not None
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    try:
        body = msg.get_content()
    except (LookupError, UnicodeError, ValueError) as exc:
        raise InputError(f"{origin}: cannot decode the message body: {exc}") from None
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str):
        return data
    head = data[: m.start()]
    eol = b"\r\n" if head.endswith(b"\r") or b"\r\n" in head else b"\n"
    head = _CTE_RE.sub(rb"\1 8bit", head, count=1)
    head = _CHARSET_RE.sub(rb"\1\2utf-8\2", head, count=1)
    lines = body.splitlines()
    text = eol.join(line.encode("utf-8", "surrogateescape") for line in lines)
    return head + eol + eol + text + (eol if lines else b"")
