"""A mail whose text is transfer-encoded or multipart, made readable to annotate.

Notes are inserted under the lines a reply quotes; a quoted-printable or
base64 body has no such lines until it is decoded, and a multipart mail
(text and HTML alternatives, as many mailers send) holds its text inside
MIME structure. So `annotate` rewrites such a mail as its plain text: the
headers as they came, except `Content-Type: text/plain; charset=utf-8` and
`Content-Transfer-Encoding: 8bit`, then the decoded text. Every other input
is returned byte for byte.
"""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage

from lockcheck.errors import InputError

_BLANK_RE = re.compile(rb"\r?\n\r?\n")
ENCODED = ("base64", "quoted-printable")
_REWRITTEN = (b"content-type", b"content-transfer-encoding")


def _needs_decoding(msg: EmailMessage) -> bool:
    if msg.is_multipart():
        return True
    return str(msg.get("Content-Transfer-Encoding", "")).strip().lower() in ENCODED


def _headers(head: bytes, eol: bytes) -> bytes:
    """The header block with the content headers replaced (folded lines included)."""
    out: list[bytes] = []
    skipping = False
    for line in head.split(eol):
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                out.append(line)
            continue
        name = line.split(b":", 1)[0].strip().lower()
        skipping = name in _REWRITTEN
        if not skipping:
            out.append(line)
    out += [b"Content-Type: text/plain; charset=utf-8", b"Content-Transfer-Encoding: 8bit"]
    return eol.join(out)


def decoded_mail(data: bytes, origin: str) -> bytes:
    """`data` as plain 8-bit text when its body is encoded or multipart; else `data`."""
    m = _BLANK_RE.search(data)
    if m is None or data.startswith(b"From "):  # no headers, or an mbox: left alone
        return data
    msg = email.message_from_bytes(data, policy=email.policy.default)
    if not isinstance(msg, EmailMessage) or not _needs_decoding(msg):
        return data
    part = msg.get_body(preferencelist=("plain",)) if msg.is_multipart() else msg
    if not isinstance(part, EmailMessage):
        return data  # no text part: nothing a note could go under
    try:
        body = part.get_content()
    except (LookupError, UnicodeError, ValueError) as exc:
        raise InputError(f"{origin}: cannot decode the message body: {exc}") from None
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str):
        return data
    head = data[: m.start()]
    eol = b"\r\n" if b"\r\n" in head or data[m.start() : m.start() + 1] == b"\r" else b"\n"
    lines = body.splitlines()
    text = eol.join(line.encode("utf-8", "surrogateescape") for line in lines)
    return _headers(head, eol) + eol + eol + text + (eol if lines else b"")
