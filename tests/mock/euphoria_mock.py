#!/usr/bin/python3
"""Mock of the Euphoria PBX XML API, for euphoriafs tests.

Serves DownloadCallRecordingByFilename over real HTTPS (throwaway CA made with the
openssl CLI), with a plain-HTTP JSON control API beside it to add recordings, inject
faults, change behaviour and read counters. Python 3.11 standard library only.

See README.md beside this file for the command line and the control API.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import dataclasses
import hashlib
import hmac
import html
import http.server
import io
import itertools
import json
import os
import re
import select
import shutil
import signal
import socket
import socketserver
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from typing import Iterable, Iterator

# --- Protocol constants (strings exactly as the vendor reference spells them) -------

API_PATHS = frozenset({"/Euphoria.Api.aspx", "/files/1010107057/api/Euphoria.Api.aspx"})
DOWNLOAD_ACTION = "DownloadCallRecordingByFilename"
# Real actions this mock does not implement: the server knows them, the tenant may not
# use them, which is what a key without those permissions sees.
LIST_ACTION = "GetCallRecordings"
BY_ID_ACTION = "DownloadCallRecordingByUniqueId"
# Actions a tenant may be denied, or may lack, by its listing mode (config "listing").
LISTING_ACTIONS = frozenset({LIST_ACTION, BY_ID_ACTION})
LISTING_MODES = ("on", "denied", "unknown")
DATE_FORMATS = ("iso", "iso_t", "us")

ERR_NOT_LOADED = "Input XML not loaded"
ERR_NO_ROOT = "No Document Element"
ERR_AUTH = "Authorization Failed"
ERR_NO_ACTION = "No Action Defined"
ERR_DENIED = "Permission Denied"
ERR_UNKNOWN_ACTION = "Action Name Not Found"
ERR_BAD_INPUT = "Incorrect Input Parameters. Please check documentation"
ERR_CONCURRENT = "Concurrent API Calls Exceeded"
ERR_USERNAME = "That username is not part of this Tenant"

DEFAULT_TENANT = "demo"
DEFAULT_KEY = "demo-key-123"

XML_DECL = b'<?xml version="1.0" encoding="UTF-8"?>\n'
XML_CONTENT_TYPE = "text/xml; charset=utf-8"
HTML_CONTENT_TYPE = "text/html; charset=utf-8"

# Input bytes per base64 chunk: a multiple of 3 so chunks encode independently and
# concatenate into one valid base64 text; big enough to keep per-write overhead low.
B64_INPUT_CHUNK = 3 * 64 * 1024
RAW_CHUNK = 1024 * 1024
MAX_WRAP = 64 * 1024
# A request body is a few hundred bytes; anything near this is not a real client.
MAX_REQUEST_BODY = 1024 * 1024
HANDSHAKE_TIMEOUT = 10.0
# Idle keep-alive connections are closed after this, like IIS's default.
IDLE_TIMEOUT = 120.0

# Synthetic recordings: the RIFF/WAVE header sox writes for GSM 6.10, 8 kHz mono.
WAV_HEADER_SIZE = 60
GSM_BLOCK_ALIGN = 65
GSM_SAMPLES_PER_BLOCK = 320
SYNTH_BLOCK = 1024 * 1024
# Per-block byte substitution tables (XOR with the block number): with a per-block
# rotation they make every 1 MiB block distinct, so an offset bug in a client cannot
# hide behind repeated content, while generation stays at memcpy/translate speed.
XOR_TABLES = tuple(bytes(i ^ k for i in range(256)) for k in range(256))

SHAPES = ("callrecording", "flat")
MISSING_MODES = ("empty", "username_error")

DEMO_RECORDINGS = (
    ("pbx4-1603469421.1196632-1001.WAV",
     "Hello. This is call recording one, from extension one thousand and one."),
    ("pbx4-1603470012.1196701-1002.WAV",
     "Good afternoon. This is the second recording, a short call about an invoice."),
    ("pbx4-1603473655.1196958-1003.WAV",
     "This is recording number three. Thank you for calling. Goodbye."),
)

OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = euphoria-mock throwaway CA
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""


class UsageError(Exception):
    """A start-up problem worth one clear line on stderr rather than a traceback."""


class BadRequest(Exception):
    """Bad control-API input: becomes HTTP 400 {"error": ...}."""


class ShortSource(Exception):
    """A recording's source delivered fewer bytes than its declared size."""


# --- Recordings -----------------------------------------------------------------------


def gsm_wav_header(total_size: int) -> bytes:
    """The 60-byte header sox writes for GSM 6.10 (tag 0x31), sized for total_size."""
    data_size = total_size - WAV_HEADER_SIZE
    samples = data_size // GSM_BLOCK_ALIGN * GSM_SAMPLES_PER_BLOCK
    return struct.pack(
        "<4sI4s" "4sIHHIIHHHH" "4sII" "4sI",
        b"RIFF", total_size - 8, b"WAVE",
        b"fmt ", 20, 0x31, 1, 8000, 1625, GSM_BLOCK_ALIGN, 0, 2, GSM_SAMPLES_PER_BLOCK,
        b"fact", 4, samples,
        b"data", data_size,
    )


class SyntheticReader:
    """Sequential reader of a synthetic recording; never holds more than one block."""

    def __init__(self, name: str, size: int):
        seed = hashlib.sha256(name.encode("utf-8", "surrogatepass")).digest()
        # shake_256 rather than random.Random: stable across Python versions.
        self._base = hashlib.shake_256(seed).digest(SYNTH_BLOCK)
        self._spin = int.from_bytes(seed[:4], "little")
        self._header = gsm_wav_header(size)
        self.size = size
        self._pos = 0
        self._block_index = -1
        self._block = b""

    def _payload_block(self, k: int) -> bytes:
        if k != self._block_index:
            r = (self._spin + k * 0x9E3779B1) % SYNTH_BLOCK
            self._block = (self._base[r:] + self._base[:r]).translate(XOR_TABLES[k & 0xFF])
            self._block_index = k
        return self._block

    def read(self, n: int) -> bytes:
        end = min(self.size, self._pos + n)
        parts = []
        pos = self._pos
        while pos < end:
            if pos < WAV_HEADER_SIZE:
                part = self._header[pos:min(end, WAV_HEADER_SIZE)]
            else:
                k, off = divmod(pos - WAV_HEADER_SIZE, SYNTH_BLOCK)
                part = self._payload_block(k)[off:off + min(end - pos, SYNTH_BLOCK - off)]
            parts.append(part)
            pos += len(part)
        self._pos = end
        return b"".join(parts)

    def close(self) -> None:
        self._block = b""


class _SizedFile:
    """A file opened for serving, with its size taken from the open descriptor."""

    def __init__(self, path: str):
        self._file = open(path, "rb")
        self.size = os.fstat(self._file.fileno()).st_size

    def read(self, n: int) -> bytes:
        return self._file.read(n)  # BufferedReader: short only at end of file

    def close(self) -> None:
        self._file.close()


class _SizedBytes(io.BytesIO):
    def __init__(self, data: bytes):
        super().__init__(data)
        self.size = len(data)


@dataclasses.dataclass
class Recording:
    """One recording of a tenant. Exactly one of data / path / synthetic_size is set.

    shape / wrap override the global reply options for this recording when not None.
    """

    name: str
    data: bytes | None = None
    path: str | None = None
    synthetic_size: int | None = None
    shape: str | None = None
    wrap: int | None = None
    # What GetCallRecordings says of it. call_time: Unix seconds (default: the name's
    # epoch, else the time it was added); listed_size / md5: override the truth, to
    # test a listing that disagrees with its download.
    call_time: int | None = None
    listed_size: int | None = None
    md5: str | None = None
    real_md5: str = ""
    deleted: bool = False
    unique_id: str | None = None
    note: str = ""
    direction: str = "Inbound"
    source: str = "0215550100"
    destination: str = "1001"

    def listed_unique_id(self) -> str:
        if self.unique_id is not None:
            return self.unique_id
        parts = self.name.split("-")
        return "-".join(parts[1:-1]) if len(parts) >= 3 else self.name

    def open(self):
        """A fresh reader with .size, .read(n) (full unless at end) and .close()."""
        if self.data is not None:
            return _SizedBytes(self.data)
        if self.path is not None:
            return _SizedFile(self.path)
        return SyntheticReader(self.name, self.synthetic_size)

    def describe(self) -> dict:
        if self.data is not None:
            kind, size = "bytes", len(self.data)
        elif self.path is not None:
            kind = "file"
            try:
                size = os.stat(self.path).st_size
            except OSError:
                size = None
        else:
            kind, size = "synthetic", self.synthetic_size
        return {"name": self.name, "size": size, "kind": kind,
                "shape": self.shape, "wrap": self.wrap, "call_time": self.call_time,
                "unique_id": self.listed_unique_id(), "deleted": self.deleted}


def stream_sha256(recording: Recording) -> tuple[int, str]:
    reader = recording.open()
    try:
        digest = hashlib.sha256()
        md5 = hashlib.md5()
        size = 0
        while chunk := reader.read(RAW_CHUNK):
            digest.update(chunk)
            md5.update(chunk)
            size += len(chunk)
        recording.real_md5 = md5.hexdigest()
        return size, digest.hexdigest()
    finally:
        reader.close()


# --- Reply bodies -------------------------------------------------------------------


def xml_text(value: str) -> str:
    # \r must be a character reference: a literal one would be normalised to \n.
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("\r", "&#13;"))


def base64_length(size: int, wrap: int) -> int:
    """Exact length of the base64 text of size bytes, CRLF between lines of wrap chars."""
    n = 4 * ((size + 2) // 3)
    if wrap and n:
        n += 2 * ((n + wrap - 1) // wrap - 1)
    return n


def base64_pieces(reader, size: int, wrap: int) -> Iterator[bytes]:
    """Base64 of reader's size bytes, chunk by chunk, never the whole text at once."""
    # With wrapping, a chunk's text is a whole number of lines, so a CRLF goes
    # between chunks and the line grid never straddles two chunks.
    chunk = B64_INPUT_CHUNK if not wrap else 3 * wrap * max(1, B64_INPUT_CHUNK // (3 * wrap))
    remaining = size
    first = True
    while remaining > 0:
        want = min(chunk, remaining)
        data = reader.read(want)
        if len(data) != want:
            raise ShortSource(f"source ended {remaining - len(data)} bytes early")
        remaining -= want
        text = binascii.b2a_base64(data, newline=False)
        if wrap:
            text = b"\r\n".join([text[i:i + wrap] for i in range(0, len(text), wrap)])
            if not first:
                text = b"\r\n" + text
        first = False
        yield text


def overwrite(pieces: Iterable[bytes], at: int, patch: bytes) -> Iterator[bytes]:
    """Pass pieces through, replacing the bytes at absolute offset at.. with patch."""
    pos = 0
    for piece in pieces:
        end = pos + len(piece)
        if at < end and at + len(patch) > pos:
            buf = bytearray(piece)
            for i, byte in enumerate(patch):
                j = at + i - pos
                if 0 <= j < len(buf):
                    buf[j] = byte
            piece = bytes(buf)
        yield piece
        pos = end


@dataclasses.dataclass
class Body:
    """A reply whose length is known up front and whose bytes are produced lazily."""

    length: int
    pieces: Iterable[bytes]
    status: int = 200
    content_type: str = XML_CONTENT_TYPE

    @classmethod
    def of(cls, data: bytes, status: int = 200, content_type: str = XML_CONTENT_TYPE):
        return cls(len(data), [data], status, content_type)


def error_xml(text: str, with_status: bool) -> bytes:
    # Status before Error: a client must find <Error> by name, not by position.
    status = " <Status>Failed</Status>\n" if with_status else ""
    return XML_DECL + f"<XML>\n{status} <Error>{xml_text(text)}</Error>\n</XML>".encode()


def recording_body(name: str, reader, shape: str, wrap: int, corrupt: bool = False) -> Body:
    """The success reply; reader None gives the empty-audioData ("no such file") reply."""
    if shape == "flat":
        open_tag, close_tag = "<XML>", "</XML>"
    else:
        open_tag, close_tag = "<XML><CallRecording>", "</CallRecording></XML>"
    head = XML_DECL + f"{open_tag}<fileName>{xml_text(name)}</fileName><audioData>".encode()
    foot = f"</audioData>{close_tag}".encode()
    size = reader.size if reader is not None else 0
    b64_len = base64_length(size, wrap)
    if corrupt and b64_len < 8:
        # Too little base64 to damage in place: send characters that are never base64.
        return Body.of(head + b"!*!*" + foot)
    audio = base64_pieces(reader, size, wrap) if reader is not None else []
    pieces: Iterable[bytes] = itertools.chain([head], audio, [foot])
    if corrupt:
        pieces = overwrite(pieces, len(head) + b64_len // 2, b"!*!*")
    return Body(len(head) + b64_len + len(foot), pieces)


_UNIQUEID = re.compile(r"-(\d{9,10})\.\d+(?=[-.]|$)")


def name_epoch(name: str) -> int | None:
    """The call's start in a name like pbx4-1603469421.1196632-1001.WAV: the first part
    of an Asterisk uniqueid after a dash, read as the daemon reads it."""
    for m in _UNIQUEID.finditer(name):
        seconds = int(m.group(1))
        if 946684800 <= seconds < 4102444800:
            return seconds
    return None


def format_stamp(call_time: int, offset_hours: float, fmt: str) -> str:
    t = time.gmtime(call_time + int(offset_hours * 3600))
    if fmt == "us":
        hour = t.tm_hour % 12 or 12
        return (f"{t.tm_mon}/{t.tm_mday}/{t.tm_year} {hour}:{t.tm_min:02d}:{t.tm_sec:02d} "
                f"{'PM' if t.tm_hour >= 12 else 'AM'}")
    sep = "T" if fmt == "iso_t" else " "
    return time.strftime(f"%Y-%m-%d{sep}%H:%M:%S", t)


def server_date(call_time: int, offset_hours: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(call_time + int(offset_hours * 3600)))


def listing_xml(records: list[tuple[Recording, int, int]], element: str, offset_hours: float,
                fmt: str) -> bytes:
    """records: (recording, call_time, real size) each."""
    out = [XML_DECL + b"<XML>\n"]
    for i, (rec, call_time, size) in enumerate(records):
        fields = [
            ("uID", str(i + 1)), ("MD5", rec.md5 if rec.md5 is not None else rec.real_md5),
            ("Direction", rec.direction), ("Source", rec.source),
            ("Destination", rec.destination),
            ("DateStamp", format_stamp(call_time, offset_hours, fmt)),
            ("FileName", rec.name),
            ("FileSize", str(rec.listed_size if rec.listed_size is not None else size)),
            ("HasComment", "1" if rec.note else "0"), ("Flagged", "0"),
            ("UniqueID", rec.listed_unique_id()), ("IsDeleted", "1" if rec.deleted else "0"),
            ("Status", "Complete"), ("CrmTag", ""), ("Note", rec.note),
            ("SipCallId", f"{i}@pbx4"),
        ]
        body = "".join(f"<{k}>{xml_text(v)}</{k}>" for k, v in fields)
        out.append(f" <{element}>{body}</{element}>\n".encode())
    out.append(b"</XML>")
    return b"".join(out)


def html_page(title: str, message: str) -> bytes:
    return (f"<!DOCTYPE html>\n<html><head><title>{html.escape(title)}</title></head>"
            f"<body><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p></body>"
            "</html>\n").encode()


def doctype_xml(name: str) -> bytes:
    # An external entity (XXE) and nested internal entities (entity expansion): a
    # client must refuse the DTD, never fetch the file or expand the entities.
    entity_a = "a" * 64
    entity_b = "&a;" * 64
    return (
        '<!DOCTYPE XML [<!ENTITY xxe SYSTEM "file:///etc/passwd">'
        f'<!ENTITY a "{entity_a}"><!ENTITY b "{entity_b}">]>\n'
        f"<XML><CallRecording><fileName>{xml_text(name)}</fileName>"
        "<audioData>&xxe;&b;</audioData></CallRecording></XML>"
    ).encode()


# --- Request parsing -----------------------------------------------------------------

DOCTYPE_MARKERS = tuple("<!DOCTYPE".encode(enc) for enc in ("utf-8", "utf-16-le", "utf-16-be"))


@dataclasses.dataclass
class ApiRequest:
    """The fields of one API request. The key is kept out of repr and of every log."""

    error: str | None = None  # decided while parsing: steps 1 and 2
    tenant: str | None = None
    auth: str | None = dataclasses.field(default=None, repr=False)
    action: str | None = None
    file_name: str | None = None
    unique_id: str | None = None
    page_size: str | None = None
    start_at: str | None = None
    start_date: str | None = None
    end_date: str | None = None

    def public(self) -> dict:
        out = {"tenant": self.tenant, "action": self.action, "filename": self.file_name,
               "auth_present": bool(self.auth)}
        if self.action == LIST_ACTION:
            out.update(pageSize=self.page_size, startAt=self.start_at,
                       StartDate=self.start_date, EndDate=self.end_date)
        elif self.action == BY_ID_ACTION:
            out.update(uniqueId=self.unique_id)
        return out


def _text(element: ET.Element | None) -> str | None:
    return None if element is None else (element.text or "")


def parse_api_request(body: bytes | None) -> ApiRequest:
    # ElementTree fetches no external entity, but would expand internal ones: any DTD
    # is refused before parsing, as a DTD has no business in a request.
    if body is None or any(marker in body for marker in DOCTYPE_MARKERS):
        return ApiRequest(error=ERR_NOT_LOADED)
    try:
        root = ET.fromstring(body)
    except (ET.ParseError, ValueError, LookupError):
        return ApiRequest(error=ERR_NOT_LOADED)
    if root.tag != "XML":
        return ApiRequest(error=ERR_NO_ROOT)
    tenant = root.find("Tenant")
    name = _text(tenant.find("Name")) if tenant is not None else None
    auth = _text(tenant.find("Auth")) if tenant is not None else None
    action = _text(root.find("ActionName"))
    return ApiRequest(
        tenant=name.strip() if name is not None else None,
        auth=auth.strip() if auth is not None else None,
        action=action.strip() if action is not None else None,
        # The file name is matched exactly: no trimming, unlike every other field.
        file_name=_text(root.find("FileName")),
        unique_id=_text(root.find("uniqueId")),
        page_size=_text(root.find("pageSize")),
        start_at=_text(root.find("startAt")),
        start_date=_text(root.find("StartDate")),
        end_date=_text(root.find("EndDate")),
    )


# --- Faults ----------------------------------------------------------------------------


@dataclasses.dataclass
class Fault:
    kind: str  # error, http, html, garbage, truncate, corrupt, doctype, stall, reset, empty
    arg: str | int | float | None
    spec: str
    tenant: str | None  # None: every tenant
    name: str | None  # None: every file name
    remaining: int  # -1: forever
    with_status: bool | None
    serial: int

    def matches(self, tenant: str, name: str) -> bool:
        return self.tenant in (None, tenant) and self.name in (None, name)

    def specificity(self) -> int:
        return (self.tenant is None) + 2 * (self.name is None)

    def describe(self) -> dict:
        return {"fault": self.spec, "tenant": self.tenant, "name": self.name,
                "times": self.remaining, "with_status": self.with_status}


def parse_fault_spec(spec: object) -> tuple[str, str | int | float | None]:
    if not isinstance(spec, str) or not spec:
        raise BadRequest("fault must be a non-empty string")
    kind, sep, arg = spec.partition(":")
    if kind in ("html", "garbage", "corrupt", "doctype", "reset", "empty"):
        if sep:
            raise BadRequest(f"fault {kind} takes no argument")
        return kind, None
    if kind == "error":
        if not arg:
            raise BadRequest("fault error:TEXT needs a text")
        return kind, arg
    try:
        if kind == "http":
            code = int(arg)
            if not 200 <= code <= 599:
                raise ValueError
            return kind, code
        if kind == "truncate":
            return kind, int(arg)
        if kind == "stall":
            seconds = float(arg)
            if not 0 <= seconds <= 3600:
                raise ValueError
            return kind, seconds
    except ValueError:
        raise BadRequest(f"bad argument in fault {spec!r}") from None
    raise BadRequest(f"unknown fault kind {kind!r}")


# --- Shared state ----------------------------------------------------------------------


@dataclasses.dataclass
class Tenant:
    name: str
    key: str = dataclasses.field(repr=False)
    recordings: dict[str, Recording] = dataclasses.field(default_factory=dict)
    deny: bool = False
    with_status: bool | None = None  # None: the global setting
    missing_mode: str | None = None  # None: the global setting
    listing: str | None = None  # None: the global setting (LISTING_MODES)
    in_flight: int = 0  # our calls holding a slot now (never the holds below)
    max_in_flight: int = 0  # since the last reset
    # Slots a foreign client holds (POST /hold): [slots, monotonic expiry] each. They
    # count toward the limit like calls, but are not calls: never in calls/in_flight.
    holds: list[list] = dataclasses.field(default_factory=list)

    def held(self, now: float) -> int:
        """Slots held by foreign clients now; drops holds that have run out."""
        self.holds = [h for h in self.holds if h[1] > now]
        return sum(h[0] for h in self.holds)


@dataclasses.dataclass
class Config:
    latency: float = 0.0
    limit: int = 3
    name_latency: dict[str, float] = dataclasses.field(default_factory=dict)
    shape: str = "callrecording"
    wrap: int = 0
    with_status: bool = False
    missing_mode: str = "empty"
    pace: int = 0  # bytes/s of a recording reply's body; 0: as fast as possible
    listing: str = "on"  # GetCallRecordings and by-id: on, denied, unknown
    page_cap: int = 0  # most records a page holds, whatever was asked; 0: no cap
    server_zone: float = 0.0  # hours east of UTC of the server's DateStamp and dates
    record_element: str = "CallRecording"  # the listing's record element name
    date_format: str = "iso"  # iso (a space), iso_t, us

    def public(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Admission:
    """What to send for one API call. slot_tenant set: a concurrency slot is held."""

    error: str | None = None
    with_status: bool = False
    slot_tenant: Tenant | None = None
    fault: Fault | None = None
    delay: float = 0.0
    file_name: str = ""
    recording: Recording | None = None
    listing: bytes | None = None  # a GetCallRecordings reply
    shape: str = "callrecording"
    wrap: int = 0
    pace: int = 0


class Counters:
    def __init__(self):
        self.calls: dict[str, int] = {}
        self.total_calls = 0
        self.max_in_flight = 0
        self.exceeded = 0
        self.connections = 0
        self.handshakes = 0
        self.auth_failures = 0
        self.faults_injected = 0
        self.listing_calls = 0
        self.listed_records = 0
        self.by_id_calls = 0
        self.last_request: dict | None = None


class MockState:
    """Everything the two servers share. One lock guards all of it: calls are cheap
    and rare enough that finer locking would only add ways to get counters wrong."""

    def __init__(self, config: Config, verbose: bool):
        self._lock = threading.Lock()
        self._config = config
        self._tenants: dict[str, Tenant] = {}
        self._faults: list[Fault] = []
        self._fault_serial = itertools.count()
        self._counters = Counters()
        self._in_flight = 0
        self._verbose = verbose
        # Set on SIGTERM/SIGINT or POST /shutdown; stalls and latency sleeps wait on it
        # so that shutting down never waits for them.
        self.stop_event = threading.Event()

    # Logging: stderr only, only with --verbose, never a key (requests are logged
    # from ApiRequest.public(), which holds none).
    def log(self, message: str) -> None:
        if self._verbose:
            sys.stderr.write(f"[euphoria-mock {time.strftime('%H:%M:%S')}] {message}\n")
            sys.stderr.flush()

    # --- tenants and recordings
    def add_tenant(self, name: str, key: str, **options) -> Tenant:
        with self._lock:
            tenant = self._tenants.get(name)
            if tenant is None:
                tenant = self._tenants[name] = Tenant(name, key)
            elif key is not None:
                tenant.key = key
            for option, value in options.items():
                setattr(tenant, option, value)
            return tenant

    def has_tenant(self, name: str) -> bool:
        with self._lock:
            return name in self._tenants

    def put_recording(self, tenant: str, recording: Recording) -> None:
        with self._lock:
            self._tenant_or_raise(tenant).recordings[recording.name] = recording

    def get_recording(self, tenant: str, name: str) -> Recording | None:
        with self._lock:
            return self._tenant_or_raise(tenant).recordings.get(name)

    def delete_recording(self, tenant: str, name: str) -> bool:
        with self._lock:
            return self._tenant_or_raise(tenant).recordings.pop(name, None) is not None

    def list_recordings(self, tenant: str) -> list[dict]:
        with self._lock:
            recordings = list(self._tenant_or_raise(tenant).recordings.values())
        return [r.describe() for r in recordings]

    def _tenant_or_raise(self, name: str) -> Tenant:
        tenant = self._tenants.get(name)
        if tenant is None:
            raise BadRequest(f"unknown tenant {name!r}")
        return tenant

    # --- faults
    def add_fault(self, tenant, name, spec, times, with_status) -> Fault:
        kind, arg = parse_fault_spec(spec)
        with self._lock:
            if tenant is not None:
                self._tenant_or_raise(tenant)
            fault = Fault(kind, arg, spec, tenant, name, times, with_status,
                          next(self._fault_serial))
            self._faults.append(fault)
            return fault

    def clear_faults(self, tenant=None, name=None) -> int:
        with self._lock:
            keep = [f for f in self._faults
                    if (tenant is not None and f.tenant != tenant)
                    or (name is not None and f.name != name)]
            removed = len(self._faults) - len(keep)
            self._faults = keep
            return removed

    def list_faults(self) -> list[dict]:
        with self._lock:
            return [f.describe() for f in self._faults]

    def _take_fault(self, tenant: str, name: str) -> Fault | None:
        # The most specific matching fault wins; among equals the oldest, so faults
        # posted for one name queue up and are served in order.
        candidates = [f for f in self._faults if f.matches(tenant, name)]
        if not candidates:
            return None
        fault = min(candidates, key=lambda f: (f.specificity(), f.serial))
        if fault.remaining > 0:
            fault.remaining -= 1
            if fault.remaining == 0:
                self._faults.remove(fault)
        self._counters.faults_injected += 1
        return fault

    # --- configuration
    def config(self) -> dict:
        with self._lock:
            return self._config.public()

    def update_config(self, changes: dict, tenant_deny: dict[str, bool]) -> dict:
        with self._lock:
            for name in tenant_deny:
                self._tenant_or_raise(name)
            for name, deny in tenant_deny.items():
                self._tenants[name].deny = deny
            for key, value in changes.items():
                setattr(self._config, key, value)
            return self._config.public()

    # --- counters
    def count_connection(self) -> None:
        with self._lock:
            self._counters.connections += 1

    def count_handshake(self) -> None:
        with self._lock:
            self._counters.handshakes += 1

    def count_api_post(self) -> None:
        with self._lock:
            self._counters.total_calls += 1

    def stats(self) -> dict:
        with self._lock:
            c = self._counters
            now = time.monotonic()
            tenants = {t.name: {"in_flight": t.in_flight, "max_in_flight": t.max_in_flight,
                                "held": t.held(now)} for t in self._tenants.values()}
            return {
                "calls": dict(c.calls), "total_calls": c.total_calls,
                "in_flight": self._in_flight, "max_in_flight": c.max_in_flight,
                "held": sum(t["held"] for t in tenants.values()), "tenants": tenants,
                "exceeded": c.exceeded, "connections": c.connections,
                "handshakes": c.handshakes, "last_request": c.last_request,
                "auth_failures": c.auth_failures, "faults_injected": c.faults_injected,
                "listing_calls": c.listing_calls, "listed_records": c.listed_records,
                "by_id_calls": c.by_id_calls,
            }

    def reset_counters(self) -> None:
        with self._lock:
            self._counters = Counters()
            # Calls still streaming keep their slots; the maximum restarts from them.
            self._counters.max_in_flight = self._in_flight
            for tenant in self._tenants.values():
                tenant.max_in_flight = tenant.in_flight

    # --- a foreign client (another integration, the PBX portal) sharing the limit
    def hold(self, tenant: str, slots: int, seconds: float) -> dict:
        with self._lock:
            t = self._tenant_or_raise(tenant)
            now = time.monotonic()
            t.holds.append([slots, now + seconds])
            return {"tenant": t.name, "held": t.held(now), "in_flight": t.in_flight,
                    "limit": self._config.limit}

    def clear_holds(self, tenant: str | None) -> int:
        with self._lock:
            if tenant is not None:
                self._tenant_or_raise(tenant)
            now = time.monotonic()
            released = 0
            for t in self._tenants.values():
                if tenant in (None, t.name):
                    released += t.held(now)
                    t.holds = []
            return released

    # --- the API decision (steps 3 to 10 of the reference behaviour)
    def admit(self, request: ApiRequest) -> Admission:
        with self._lock:
            admission = self._admit_locked(request)
            self._counters.last_request = dict(
                request.public(),
                result=admission.error or (admission.fault.spec if admission.fault else "ok"))
            return admission

    def _admit_locked(self, req: ApiRequest) -> Admission:
        cfg = self._config
        if req.error is not None:
            return Admission(error=req.error, with_status=cfg.with_status)
        tenant = self._tenants.get(req.tenant) if req.tenant else None
        if tenant is None or not req.auth or not hmac.compare_digest(
                tenant.key.encode(), req.auth.encode()):
            self._counters.auth_failures += 1
            return Admission(error=ERR_AUTH, with_status=cfg.with_status)
        with_status = cfg.with_status if tenant.with_status is None else tenant.with_status
        error = None
        if not req.action:
            error = ERR_NO_ACTION
        elif req.action in LISTING_ACTIONS and (tenant.listing or cfg.listing) == "denied":
            error = ERR_DENIED
        elif req.action in LISTING_ACTIONS and (tenant.listing or cfg.listing) == "unknown":
            error = ERR_UNKNOWN_ACTION
        elif req.action not in LISTING_ACTIONS and req.action != DOWNLOAD_ACTION:
            error = ERR_UNKNOWN_ACTION
        elif tenant.deny:
            error = ERR_DENIED
        elif req.action == DOWNLOAD_ACTION and not req.file_name:
            error = ERR_BAD_INPUT
        elif req.action == BY_ID_ACTION and not (req.unique_id or "").strip():
            error = ERR_BAD_INPUT
        elif req.action == LIST_ACTION and not self._valid_listing(req):
            error = ERR_BAD_INPUT
        elif tenant.in_flight + tenant.held(time.monotonic()) >= cfg.limit:
            self._counters.exceeded += 1
            error = ERR_CONCURRENT
        if error is not None:
            return Admission(error=error, with_status=with_status)

        # From here the call holds a slot until its last byte is written (release()).
        tenant.in_flight += 1
        tenant.max_in_flight = max(tenant.max_in_flight, tenant.in_flight)
        self._in_flight += 1
        self._counters.max_in_flight = max(self._counters.max_in_flight, self._in_flight)
        if req.action == LIST_ACTION:
            return self._admit_listing(req, tenant, with_status)
        name = req.file_name
        if req.action == BY_ID_ACTION:
            self._counters.by_id_calls += 1
            wanted = req.unique_id.strip()
            found = [r for r in tenant.recordings.values()
                     if r.listed_unique_id() == wanted and not r.deleted]
            name = found[0].name if found else ""
        self._counters.calls[name] = self._counters.calls.get(name, 0) + 1
        fault = self._take_fault(tenant.name, name)
        if fault is not None and fault.with_status is not None:
            with_status = fault.with_status
        recording = tenant.recordings.get(name)
        admission = Admission(
            with_status=with_status, slot_tenant=tenant, fault=fault, file_name=name,
            recording=recording,
            delay=cfg.latency + cfg.name_latency.get(name, 0.0),
            shape=recording.shape if recording and recording.shape else cfg.shape,
            wrap=recording.wrap if recording and recording.wrap is not None else cfg.wrap,
            pace=cfg.pace)
        missing_mode = tenant.missing_mode or cfg.missing_mode
        if fault is None and recording is None and missing_mode == "username_error":
            admission.error = ERR_USERNAME
        return admission

    @staticmethod
    def _valid_listing(req: ApiRequest) -> bool:
        try:
            page, start = int(req.page_size or ""), int(req.start_at or "")
            for date in (req.start_date, req.end_date):
                time.strptime(date or "", "%Y-%m-%d")
        except ValueError:
            return False
        return page > 0 and start >= 0

    def _admit_listing(self, req: ApiRequest, tenant: Tenant, with_status: bool) -> Admission:
        """Holds a slot: the records of StartDate..EndDate (inclusive, in the server's
        zone), oldest first, from startAt, at most min(pageSize, page_cap)."""
        cfg = self._config
        self._counters.listing_calls += 1
        chosen = []
        for rec in tenant.recordings.values():
            call_time = rec.call_time if rec.call_time is not None else name_epoch(rec.name)
            if call_time is None:
                continue
            if req.start_date <= server_date(call_time, cfg.server_zone) <= req.end_date:
                chosen.append((rec, call_time, rec.describe()["size"] or 0))
        chosen.sort(key=lambda item: (item[1], item[0].name))
        page = int(req.page_size)
        if cfg.page_cap:
            page = min(page, cfg.page_cap)
        start = int(req.start_at)
        records = chosen[start:start + page]
        self._counters.listed_records += len(records)
        body = listing_xml(records, cfg.record_element, cfg.server_zone, cfg.date_format)
        return Admission(with_status=with_status, slot_tenant=tenant, listing=body,
                         delay=cfg.latency)

    def release(self, tenant: Tenant) -> None:
        with self._lock:
            tenant.in_flight -= 1
            self._in_flight -= 1


# --- HTTP plumbing ---------------------------------------------------------------------


class _LoopbackServer(http.server.ThreadingHTTPServer):
    daemon_threads = True  # never wait for a stalled client at shutdown
    request_queue_size = 128  # concurrency tests open many connections at once

    def __init__(self, address, handler, state: MockState):
        self.state = state
        super().__init__(address, handler)

    def server_bind(self):
        # HTTPServer.server_bind resolves the host name (getfqdn), which can hang on
        # a machine without DNS; loopback needs none of it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        # A client hanging up mid-reply is routine here: one log line, no traceback.
        self.state.log(f"connection from {client_address[1]}: {sys.exc_info()[1]!r}")

    def get_request(self):
        sock, address = super().get_request()
        # Small replies go out as header + body writes: without this, Nagle and
        # delayed ACK would add ~40 ms to each keep-alive call.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, address


class ApiServer(_LoopbackServer):
    """HTTPS server: counts TCP connections at accept and handshakes after success.

    The TLS handshake runs in the connection's own thread, so a slow or broken client
    never blocks accept().
    """

    def __init__(self, address, handler, state: MockState, context: ssl.SSLContext):
        self.ssl_context = context
        super().__init__(address, handler, state)

    def get_request(self):
        sock, address = super().get_request()
        self.state.count_connection()
        return sock, address

    def finish_request(self, request, client_address):
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            self.state.log(f"TLS handshake failed from {client_address[1]}: {exc}")
            return
        self.state.count_handshake()
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            tls.close()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every reply carries a Content-Length
    timeout = IDLE_TIMEOUT
    server: _LoopbackServer

    def log_message(self, format, *args):  # noqa: A002 (signature is the base class's)
        self.server.state.log(f"{self.address_string()} {format % args}")

    def read_body(self, limit: int | None) -> bytes | None:
        """The request body, or None (and the connection marked for closing) if it is
        unreadable or larger than limit."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked(limit)
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if length < 0 or (limit is not None and length > limit):
            self.close_connection = True
            return None
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            return None
        return body

    def _read_chunked(self, limit: int | None) -> bytes | None:
        parts, total = [], 0
        try:
            while True:
                size = int(self.rfile.readline(1024).split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(1024).strip():  # trailers
                        pass
                    return b"".join(parts)
                total += size
                if limit is not None and total > limit:
                    raise ValueError("body too large")
                parts.append(self.rfile.read(size))
                self.rfile.readline(1024)
        except ValueError:
            self.close_connection = True
            return None

    def send_body(self, body: Body, limit: int | None = None, headers=(), pace: int = 0) -> int:
        """Send body (its first limit bytes only, if given), at pace bytes/s if pace is
        not 0. Returns bytes sent."""
        self.send_response(body.status)
        self.send_header("Content-Type", body.content_type)
        self.send_header("Content-Length", str(body.length))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        sent = 0
        start = time.monotonic()
        for piece in body.pieces:
            if limit is not None:
                piece = piece[:max(0, limit - sent)]
            if piece and pace:
                sent = self._write_paced(piece, sent, start, pace)
            elif piece:
                self.wfile.write(piece)
                sent += len(piece)
            if limit is not None and sent >= limit:
                break
        return sent

    def _write_paced(self, piece: bytes, sent: int, start: float, pace: int) -> int:
        """Writes piece in small steps so that byte N of the body leaves no earlier than
        N / pace seconds after the first; returns the new count of bytes sent."""
        step = max(1, min(64 * 1024, pace // 20))  # about 20 writes a second
        stop = self.server.state.stop_event
        for i in range(0, len(piece), step):
            chunk = piece[i:i + step]
            self.wfile.write(chunk)
            sent += len(chunk)
            delay = start + sent / pace - time.monotonic()
            if delay > 0 and stop.wait(delay):
                raise ConnectionAbortedError("the mock is shutting down")
        return sent


class ApiHandler(_Handler):
    server: ApiServer
    server_version = "Microsoft-IIS/10.0"

    def version_string(self):
        return self.server_version

    def do_GET(self):
        if self.path.split("?", 1)[0] in API_PATHS:
            self.send_body(Body.of(html_page("405 Method Not Allowed", "Use POST."),
                                   405, HTML_CONTENT_TYPE), headers=[("Allow", "POST")])
        else:
            self._not_found()

    def do_POST(self):
        if self.path.split("?", 1)[0] not in API_PATHS:
            self.read_body(MAX_REQUEST_BODY)  # keep the connection usable
            self._not_found()
            return
        state = self.server.state
        state.count_api_post()
        request = parse_api_request(self.read_body(MAX_REQUEST_BODY))
        admission = state.admit(request)
        state.log(f"API {request.public()} -> "
                  f"{admission.error or (admission.fault and admission.fault.spec) or 'ok'}")
        if admission.slot_tenant is None:
            self.send_body(Body.of(error_xml(admission.error, admission.with_status)))
            return
        try:
            if admission.delay > 0 and self._wait_unless_client_left(admission.delay):
                self.close_connection = True
                return
            if admission.listing is not None:
                self.send_body(Body.of(admission.listing))
            elif admission.fault is not None:
                self._send_fault(admission)
            elif admission.error is not None:
                self.send_body(Body.of(error_xml(admission.error, admission.with_status)))
            else:
                self._send_recording(admission)
        except (ConnectionError, ssl.SSLError, TimeoutError) as exc:
            state.log(f"client went away: {exc}")
            self.close_connection = True
        except ShortSource as exc:
            state.log(f"recording {admission.file_name!r}: {exc}")
            self.close_connection = True
        finally:
            state.release(admission.slot_tenant)

    def _not_found(self):
        self.send_body(Body.of(html_page("404 - File or directory not found.",
                                         "The resource you are looking for might have "
                                         "been removed."), 404, HTML_CONTENT_TYPE))

    def _send_recording(self, admission: Admission, corrupt: bool = False,
                        limit=lambda length: None):
        """The recording's reply (empty audioData if there is none); limit(length)
        gives how many body bytes to actually send (None: all)."""
        reader = admission.recording.open() if admission.recording is not None else None
        try:
            body = recording_body(admission.file_name, reader, admission.shape,
                                  admission.wrap, corrupt=corrupt)
            self.send_body(body, limit=limit(body.length), pace=admission.pace)
        finally:
            if reader is not None:
                reader.close()

    def _send_fault(self, admission: Admission):
        fault = admission.fault
        kind, arg = fault.kind, fault.arg
        if kind == "error":
            self.send_body(Body.of(error_xml(arg, admission.with_status)))
        elif kind == "http":
            reason = self.responses.get(arg, ("Error",))[0]
            self.send_body(Body.of(html_page(f"{arg} {reason}", "The service is unavailable."),
                                   arg, HTML_CONTENT_TYPE))
        elif kind == "html":
            self.send_body(Body.of(html_page("Service Unavailable",
                                             "The site is down for maintenance."),
                                   200, HTML_CONTENT_TYPE))
        elif kind == "garbage":
            self.send_body(Body.of(os.urandom(4096)))
        elif kind == "doctype":
            self.send_body(Body.of(doctype_xml(admission.file_name)))
        elif kind == "empty":
            self._send_recording(dataclasses.replace(admission, recording=None))
        elif kind == "corrupt":
            self._send_recording(admission, corrupt=True)
        elif kind == "truncate":
            self._send_truncated(admission, arg)
        elif kind == "stall":
            self._send_stalled(admission, arg)
        elif kind == "reset":
            self._reset_connection()

    def _send_truncated(self, admission: Admission, n: int):
        # The full Content-Length is declared, fewer bytes follow, then a plain close.
        self._send_recording(admission,
                             limit=lambda length: n if n >= 0 else max(0, length + n))
        self.close_connection = True

    def _send_stalled(self, admission: Admission, seconds: float):
        # Half the body, then silence for `seconds`, then close: the client sees a
        # stall and, if it waited it out, a short body. It never gets the rest.
        self._send_recording(admission, limit=lambda length: length // 2)
        self._wait_unless_client_left(seconds)
        self.close_connection = True

    def _wait_unless_client_left(self, seconds: float) -> bool:
        """Sleeps, but ends early (True) when the client hangs up, as a real server
        notices a closed connection: a caller that gave up must not keep its
        concurrency slot until the sleep is over."""
        deadline = time.monotonic() + seconds
        stop = self.server.state.stop_event
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            # Mid-reply the client sends nothing: readable means a FIN or a TLS alert.
            readable, _, _ = select.select([self.connection], [], [], min(left, 0.05))
            if readable:
                return True
        return False

    def _reset_connection(self):
        # SO_LINGER with a zero timeout turns close() into a TCP RST.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                   struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()  # the fd really closes when rfile lets go, right after


# --- Control API -----------------------------------------------------------------------


def _want(obj: dict, key: str, types, default=None):
    """obj[key] if it has one of types (default if absent); else BadRequest."""
    if key not in obj:
        return default
    types = types if isinstance(types, tuple) else (types,)
    value = obj[key]
    # bool is an int subclass: never take true for a number.
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        raise BadRequest(f"bad type for {key!r}")
    return value


def _seconds(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 3600:
        raise BadRequest(f"{what} must be a number of seconds in [0, 3600]")
    return float(value)


def _wrap(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_WRAP:
        raise BadRequest(f"wrap must be an integer in [0, {MAX_WRAP}]")
    return value


def _choice(value, what: str, choices) -> str:
    if value not in choices:
        raise BadRequest(f"{what} must be one of {', '.join(choices)}")
    return value


def _hours(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not -14 <= value <= 14:
        raise BadRequest("server_zone must be hours east of UTC, -14 to 14")
    return float(value)


def _element_name(value) -> str:
    if not isinstance(value, str) or not value.isidentifier() or value in ("Error", "Status"):
        raise BadRequest("record_element must be an XML name other than Error and Status")
    return value


def _shape(value) -> str:
    if value not in SHAPES:
        raise BadRequest(f"shape must be one of {SHAPES}")
    return value


def _missing_mode(value) -> str:
    if value not in MISSING_MODES:
        raise BadRequest(f"missing_mode must be one of {MISSING_MODES}")
    return value


class ControlHandler(_Handler):
    server_version = "euphoria-mock-control"

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _dispatch(self, method: str):
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query,
                                                             keep_blank_values=True).items()}
        route = self.ROUTES.get((method, url.path))
        try:
            body = self.read_body(None) if method != "GET" else b""
            if route is None:
                self._json(404, {"error": f"no route {method} {url.path}"})
                return
            payload = {}
            if body and body.strip():
                try:
                    payload = json.loads(body)
                except (ValueError, UnicodeDecodeError):
                    raise BadRequest("body is not JSON") from None
                if not isinstance(payload, dict):
                    raise BadRequest("body must be a JSON object")
            result = route(self, payload, query)
            if result is not None:
                self._json(200, result)
        except BadRequest as exc:
            self._json(400, {"error": str(exc)})
        except ConnectionError:
            self.close_connection = True

    def _json(self, status: int, obj) -> None:
        data = (json.dumps(obj, ensure_ascii=False) + "\n").encode()
        self.send_body(Body.of(data, status, "application/json"))

    @property
    def state(self) -> MockState:
        return self.server.state

    def _tenant_arg(self, source: dict) -> str:
        tenant = source.get("tenant", DEFAULT_TENANT)
        if not isinstance(tenant, str) or not self.state.has_tenant(tenant):
            raise BadRequest(f"unknown tenant {tenant!r}")
        return tenant

    def _name_arg(self, source: dict) -> str:
        name = source.get("name")
        if not isinstance(name, str) or not name:
            raise BadRequest("name must be a non-empty string")
        return name

    # --- routes
    def get_stats(self, payload, query):
        return self.state.stats()

    def post_reset(self, payload, query):
        self.state.reset_counters()
        return {"ok": True}

    def get_config(self, payload, query):
        return self.state.config()

    def post_config(self, payload, query):
        changes = {}
        validators = {
            "latency": lambda v: _seconds(v, "latency"),
            "limit": self._limit,
            "name_latency": self._name_latency,
            "shape": _shape,
            "wrap": _wrap,
            "with_status": lambda v: _want({"with_status": v}, "with_status", bool),
            "missing_mode": _missing_mode,
            "pace": self._pace,
            "listing": lambda v: _choice(v, "listing", LISTING_MODES),
            "page_cap": self._limit,
            "server_zone": _hours,
            "record_element": _element_name,
            "date_format": lambda v: _choice(v, "date_format", DATE_FORMATS),
        }
        tenant_deny = {}
        for key, value in payload.items():
            if key == "tenant_deny":
                if not isinstance(value, dict) or not all(
                        isinstance(v, bool) for v in value.values()):
                    raise BadRequest("tenant_deny must map tenant names to booleans")
                tenant_deny = value
            elif key in validators:
                changes[key] = validators[key](value)
            else:
                raise BadRequest(f"unknown config key {key!r}")
        return self.state.update_config(changes, tenant_deny)

    @staticmethod
    def _limit(value) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise BadRequest("limit must be a non-negative integer")
        return value

    @staticmethod
    def _pace(value) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1 << 40:
            raise BadRequest("pace must be a whole number of bytes per second, 0 for unpaced")
        return value

    @staticmethod
    def _name_latency(value) -> dict[str, float]:
        if not isinstance(value, dict):
            raise BadRequest("name_latency must map file names to seconds")
        return {name: _seconds(s, f"name_latency[{name!r}]") for name, s in value.items()}

    def post_tenant(self, payload, query):
        name = self._name_arg(payload)
        key = _want(payload, "key", str)
        if key is not None and not key.strip():
            raise BadRequest("key must not be blank")
        if key is None and not self.state.has_tenant(name):
            raise BadRequest("a new tenant needs a key")
        options = {}
        if "deny" in payload:
            options["deny"] = _want(payload, "deny", bool)
        if "with_status" in payload:
            options["with_status"] = _want(payload, "with_status", (bool, type(None)))
        if "missing_mode" in payload:
            mode = payload["missing_mode"]
            options["missing_mode"] = None if mode is None else _missing_mode(mode)
        if "listing" in payload:
            mode = payload["listing"]
            options["listing"] = None if mode is None else _choice(mode, "listing", LISTING_MODES)
        tenant = self.state.add_tenant(name, key, **options)
        return {"name": tenant.name, "deny": tenant.deny, "with_status": tenant.with_status,
                "missing_mode": tenant.missing_mode}

    def post_recording(self, payload, query):
        tenant = self._tenant_arg(payload)
        return self._add_recording(tenant, payload)

    def post_recordings(self, payload, query):
        """Many at once: {"tenant": ..., "recordings": [{...as for /recording}, ...]}."""
        tenant = self._tenant_arg(payload)
        items = payload.get("recordings")
        if not isinstance(items, list):
            raise BadRequest("recordings must be a list")
        checksums = _want(payload, "checksums", bool, default=True)
        return {"added": [self._add_recording(tenant, item, checksums) for item in items]}

    def _add_recording(self, tenant: str, payload: dict, checksums: bool = True) -> dict:
        if not isinstance(payload, dict):
            raise BadRequest("each recording must be a JSON object")
        name = self._name_arg(payload)
        shape = _shape(payload["shape"]) if payload.get("shape") is not None else None
        wrap = _wrap(payload["wrap"]) if payload.get("wrap") is not None else None
        sources = [k for k in ("size", "data_b64", "path") if k in payload]
        if len(sources) != 1:
            raise BadRequest("give exactly one of size, data_b64, path")
        if "size" in payload:
            size = _want(payload, "size", int)
            if size < WAV_HEADER_SIZE:
                raise BadRequest(f"size must be an integer >= {WAV_HEADER_SIZE}")
            recording = Recording(name, synthetic_size=size, shape=shape, wrap=wrap)
        elif "data_b64" in payload:
            try:
                data = base64.b64decode(_want(payload, "data_b64", str), validate=True)
            except binascii.Error:
                raise BadRequest("data_b64 is not valid base64") from None
            recording = Recording(name, data=data, shape=shape, wrap=wrap)
        else:
            path = _want(payload, "path", str)
            if not os.path.isfile(path):
                raise BadRequest(f"no such file {path!r}")
            recording = Recording(name, path=os.path.abspath(path), shape=shape, wrap=wrap)
        for key, kind in (("call_time", int), ("listed_size", int), ("md5", str),
                          ("deleted", bool), ("unique_id", str), ("note", str),
                          ("direction", str), ("source", str), ("destination", str)):
            value = _want(payload, key, (kind, type(None)))
            if value is not None:
                setattr(recording, key, value)
        if recording.call_time is None and name_epoch(name) is None:
            recording.call_time = int(time.time())
        if checksums:
            size, sha256 = stream_sha256(recording)
        else:  # many listing-only records: no MD5 in their listing, no sha256 here
            size, sha256 = recording.describe()["size"], None
        self.state.put_recording(tenant, recording)
        return {"tenant": tenant, "name": name, "size": size, "sha256": sha256}

    def get_recording(self, payload, query):
        tenant = self._tenant_arg(query)
        name = self._name_arg(query)
        recording = self.state.get_recording(tenant, name)
        if recording is None:
            self._json(404, {"error": f"no recording {name!r} for tenant {tenant!r}"})
            return None
        reader = recording.open()
        try:
            body = Body(reader.size, iter(lambda: reader.read(RAW_CHUNK), b""),
                        content_type="application/octet-stream")
            self.send_body(body)
        finally:
            reader.close()
        return None

    def delete_recording(self, payload, query):
        tenant = self._tenant_arg(query)
        name = self._name_arg(query)
        return {"deleted": self.state.delete_recording(tenant, name)}

    def get_recordings(self, payload, query):
        return {"recordings": self.state.list_recordings(self._tenant_arg(query))}

    def post_fault(self, payload, query):
        tenant = _want(payload, "tenant", (str, type(None)))
        name = _want(payload, "name", (str, type(None)))
        if name in ("", "*"):
            name = None
        times = _want(payload, "times", int, default=-1)
        if times == 0 or times < -1:
            raise BadRequest("times must be -1 (forever) or a positive integer")
        with_status = _want(payload, "with_status", (bool, type(None)))
        fault = self.state.add_fault(tenant, name, payload.get("fault"), times, with_status)
        return fault.describe()

    def post_fault_clear(self, payload, query):
        tenant = _want(payload, "tenant", (str, type(None)))
        name = _want(payload, "name", (str, type(None)))
        return {"cleared": self.state.clear_faults(tenant, name)}

    def get_faults(self, payload, query):
        return {"faults": self.state.list_faults()}

    def post_hold(self, payload, query):
        tenant = self._tenant_arg(payload)
        slots = _want(payload, "slots", int)
        if slots is None or not 1 <= slots <= 1000:
            raise BadRequest("slots must be an integer in [1, 1000]")
        if "seconds" not in payload:
            raise BadRequest("seconds is required")
        return self.state.hold(tenant, slots, _seconds(payload["seconds"], "seconds"))

    def post_hold_clear(self, payload, query):
        tenant = _want(payload, "tenant", (str, type(None)))
        return {"released": self.state.clear_holds(tenant)}

    def get_health(self, payload, query):
        return {"ok": True}

    def post_shutdown(self, payload, query):
        self._json(200, {"ok": True})
        self.state.stop_event.set()
        return None

    ROUTES = {
        ("GET", "/stats"): get_stats,
        ("POST", "/reset"): post_reset,
        ("GET", "/config"): get_config,
        ("POST", "/config"): post_config,
        ("POST", "/tenant"): post_tenant,
        ("POST", "/recording"): post_recording,
        ("POST", "/recordings"): post_recordings,
        ("GET", "/recording"): get_recording,
        ("DELETE", "/recording"): delete_recording,
        ("GET", "/recordings"): get_recordings,
        ("POST", "/fault"): post_fault,
        ("POST", "/fault/clear"): post_fault_clear,
        ("GET", "/faults"): get_faults,
        ("POST", "/hold"): post_hold,
        ("POST", "/hold/clear"): post_hold_clear,
        ("GET", "/health"): get_health,
        ("POST", "/shutdown"): post_shutdown,
    }


# --- Start-up --------------------------------------------------------------------------


def run_tool(argv: list[str], cwd: str | None = None) -> None:
    try:
        result = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except FileNotFoundError:
        raise UsageError(f"{argv[0]} is not installed (needed by the mock)") from None
    if result.returncode != 0:
        output = result.stdout.decode(errors="replace").strip()
        raise UsageError(f"{' '.join(argv[:2])} failed ({result.returncode}): {output}")


def ensure_certificates(state_dir: str) -> tuple[str, str, str]:
    """DIR/ca.pem, DIR/server.pem, DIR/server.key: reused if all there, else made."""
    ca_pem, server_pem, server_key = (os.path.join(state_dir, n)
                                      for n in ("ca.pem", "server.pem", "server.key"))
    if all(os.path.isfile(p) for p in (ca_pem, server_pem, server_key)):
        return ca_pem, server_pem, server_key
    if shutil.which("openssl") is None:
        raise UsageError("the openssl CLI is not installed (apt-get install openssl)")
    # Built in a private directory and moved in key-first, CA last, so a reader that
    # sees ca.pem sees a complete set.
    with tempfile.TemporaryDirectory(dir=state_dir, prefix=".certs-") as work:
        with open(os.path.join(work, "openssl.cnf"), "w") as f:
            f.write(OPENSSL_CONFIG)
        ec = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
        serial = lambda: "0x" + os.urandom(8).hex()  # noqa: E731
        for argv in (
            ["openssl", "genpkey", *ec, "-out", "ca.key"],
            ["openssl", "req", "-x509", "-new", "-config", "openssl.cnf",
             "-extensions", "v3_ca", "-key", "ca.key", "-sha256", "-days", "3650",
             "-set_serial", serial(), "-out", "ca.pem"],
            ["openssl", "genpkey", *ec, "-out", "server.key"],
            ["openssl", "req", "-new", "-config", "openssl.cnf", "-key", "server.key",
             "-subj", "/CN=localhost", "-out", "server.csr"],
            ["openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem",
             "-CAkey", "ca.key", "-set_serial", serial(), "-days", "3650", "-sha256",
             "-extfile", "openssl.cnf", "-extensions", "v3_server", "-out", "server.pem"],
        ):
            run_tool(argv, cwd=work)
        for name in ("ca.key", "server.key", "server.pem", "ca.pem"):
            os.replace(os.path.join(work, name), os.path.join(state_dir, name))
    return ca_pem, server_pem, server_key


def make_demo_recordings(state_dir: str) -> list[str]:
    """Real GSM 6.10 WAVs of synthesized speech in DIR/demo-recordings/ (reused)."""
    out_dir = os.path.join(state_dir, "demo-recordings")
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, name) for name, _ in DEMO_RECORDINGS]
    if all(os.path.isfile(p) and os.path.getsize(p) > WAV_HEADER_SIZE for p in paths):
        return paths
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise UsageError(f"--demo needs {tool}, which is not installed "
                             f"(apt-get install {tool})")
    with tempfile.TemporaryDirectory(dir=state_dir, prefix=".demo-") as work:
        for (name, text), path in zip(DEMO_RECORDINGS, paths):
            speech, gsm = os.path.join(work, "speech.wav"), os.path.join(work, "gsm.wav")
            run_tool(["espeak-ng", "-w", speech, text])
            # sox picks the format from the extension: it must write .wav.
            run_tool(["sox", speech, "-r", "8000", "-c", "1", "-e", "gsm-full-rate", gsm])
            os.replace(gsm, path)
    return paths


def parse_tenant_arg(value: str) -> tuple[str, str, str]:
    parts = value.split(":", 2)
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise argparse.ArgumentTypeError("expected NAME:KEY:RECDIR")
    name, key, recdir = parts
    if recdir and not os.path.isdir(recdir):
        raise argparse.ArgumentTypeError(f"{recdir!r} is not a directory")
    return name, key, recdir


def write_json_atomically(path: str, obj) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f)
        f.write("\n")
    os.replace(tmp, path)


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Mock Euphoria PBX XML API (HTTPS) for tests.")
    p.add_argument("--state-dir", required=True, help="certificates, ports.json, demo files")
    p.add_argument("--port", type=int, default=0, help="HTTPS API port (0: any free)")
    p.add_argument("--control-port", type=int, default=0,
                   help="plain-HTTP control port (0: any free)")
    p.add_argument("--tenant", action="append", type=parse_tenant_arg, default=[],
                   metavar="NAME:KEY:RECDIR", help="tenant whose recordings are RECDIR's files")
    p.add_argument("--latency", type=float, default=0.0, help="seconds before each reply")
    p.add_argument("--limit", type=int, default=3, help="concurrent calls per tenant")
    p.add_argument("--demo", action="store_true",
                   help="serve 3 spoken GSM recordings for tenant demo")
    p.add_argument("--verbose", action="store_true", help="log requests to stderr")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_arg_parser().parse_args(argv)
    state_dir = os.path.abspath(args.state_dir)
    os.makedirs(state_dir, exist_ok=True)
    state = MockState(Config(latency=max(0.0, args.latency), limit=max(0, args.limit)),
                      args.verbose)

    try:
        ca_pem, server_pem, server_key = ensure_certificates(state_dir)
        for name, key, recdir in args.tenant:
            state.add_tenant(name, key)
            if recdir:
                for entry in sorted(os.scandir(recdir), key=lambda e: e.name):
                    if entry.is_file():
                        state.put_recording(name, Recording(entry.name,
                                                            path=os.path.abspath(entry.path)))
        if not args.tenant:
            state.add_tenant(DEFAULT_TENANT, DEFAULT_KEY)
        if args.demo:
            paths = make_demo_recordings(state_dir)
            if not state.has_tenant(DEFAULT_TENANT):
                state.add_tenant(DEFAULT_TENANT, DEFAULT_KEY)
            for (name, _), path in zip(DEMO_RECORDINGS, paths):
                state.put_recording(DEFAULT_TENANT, Recording(name, path=path))
    except UsageError as exc:
        sys.stderr.write(f"euphoria_mock: {exc}\n")
        return 2

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(server_pem, server_key)

    api = ApiServer(("127.0.0.1", args.port), ApiHandler, state, context)
    control = _LoopbackServer(("127.0.0.1", args.control_port), ControlHandler, state)
    for server in (api, control):
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                         daemon=True).start()

    # The handler only sets the event; the main thread polls is_set(), which takes no
    # lock, so the handler can never deadlock against the main thread.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: state.stop_event.set())

    ports_path = os.path.join(state_dir, "ports.json")
    write_json_atomically(ports_path, {"api": api.server_address[1],
                                       "control": control.server_address[1],
                                       "pid": os.getpid()})
    print(f"READY api={api.server_address[1]} control={control.server_address[1]}",
          flush=True)
    state.log(f"serving; CA {ca_pem}")

    while not state.stop_event.is_set():
        time.sleep(0.05)

    state.log("shutting down")
    for server in (api, control):
        server.shutdown()
        server.server_close()
    try:
        with open(ports_path) as f:
            if json.load(f).get("pid") == os.getpid():
                os.unlink(ports_path)
    except (OSError, ValueError):
        pass
    sys.stdout.flush()
    sys.stderr.flush()
    # Handler threads may still be streaming to clients: end now rather than let
    # interpreter teardown race them.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
