#!/usr/bin/python3
"""Self-check of euphoria_mock.py: starts the mock and exercises every feature.

Run: /usr/bin/python3 tests/mock/test_mock_selfcheck.py   (about 15 s)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import http.client
import json
import os
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

MOCK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "euphoria_mock.py")
API = "/Euphoria.Api.aspx"
ALT_API = "/files/1010107057/api/Euphoria.Api.aspx"
ACTION = "DownloadCallRecordingByFilename"
DEMO_KEY = "demo-key-123"
WEIRD = "a&b <c> \"d\" 'e' ]]>.WAV"
UNICODE = "Ünïcødé ☎ réc 通话.WAV"
DEMO_NAMES = ("pbx4-1603469421.1196632-1001.WAV", "pbx4-1603470012.1196701-1002.WAV",
              "pbx4-1603473655.1196958-1003.WAV")
ERROR_PREFIX = b'<?xml version="1.0" encoding="UTF-8"?>\n<XML>\n'


class Mock:
    """One running mock process, with helpers to talk to both of its ports."""

    def __init__(self, state_dir: str, *args: str, env=None):
        self.state_dir = state_dir
        self.proc = subprocess.Popen([sys.executable, MOCK, "--state-dir", state_dir, *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("READY "):
            self.proc.kill()
            raise RuntimeError(f"mock did not start: {line!r} "
                               f"{self.proc.stderr.read().decode()}")
        fields = dict(kv.split("=") for kv in line.split()[1:])
        self.api_port, self.control_port = int(fields["api"]), int(fields["control"])
        self.ca = os.path.join(state_dir, "ca.pem")
        self.ssl = ssl.create_default_context(cafile=self.ca)

    def stop(self, sig=signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(10)
        finally:
            self.proc.stdout.close()
            self.proc.stderr.close()

    # --- API (HTTPS)
    def connect(self, host="127.0.0.1") -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(host, self.api_port, context=self.ssl, timeout=30)

    def post(self, body: bytes, path=API, conn=None):
        own = conn is None
        conn = conn or self.connect()
        try:
            conn.request("POST", path, body=body,
                         headers={"Content-Type": "text/xml; charset=utf-8"})
            resp = conn.getresponse()
            return resp.status, resp.getheader("Content-Type"), \
                int(resp.getheader("Content-Length")), resp.read()
        finally:
            if own:
                conn.close()

    def call(self, name, tenant="demo", key=DEMO_KEY, **kw):
        return self.post(request_xml(name, tenant, key), **kw)

    # --- control (plain HTTP)
    def control(self, method: str, path: str, obj=None, raw: bytes | None = None):
        data = raw if raw is not None else (json.dumps(obj).encode() if obj is not None
                                            else None)
        req = urllib.request.Request(f"http://127.0.0.1:{self.control_port}{path}",
                                     data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def ctl(self, method: str, path: str, obj=None):
        status, body = self.control(method, path, obj)
        if status != 200:
            raise AssertionError(f"{method} {path} -> {status} {body!r}")
        return json.loads(body)

    def stats(self):
        return self.ctl("GET", "/stats")

    def add(self, name: str, data: bytes, tenant="demo", **options):
        return self.ctl("POST", "/recording", dict(
            tenant=tenant, name=name, data_b64=base64.b64encode(data).decode(), **options))

    def fault(self, name, fault, **kw):
        return self.ctl("POST", "/fault", dict(name=name, fault=fault, **kw))

    def raw_recording(self, name, tenant="demo"):
        q = urllib.parse.urlencode({"tenant": tenant, "name": name})
        status, body = self.control("GET", f"/recording?{q}")
        return status, body


def listing_xml(start_date, end_date, page_size=500, start_at=0, tenant="lister",
                key="lister-key") -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<XML><Tenant><Name>{tenant}</Name>'
            f'<Auth>{key}</Auth></Tenant><ActionName>GetCallRecordings</ActionName>'
            f'<pageSize>{page_size}</pageSize><startAt>{start_at}</startAt>'
            f'<StartDate>{start_date}</StartDate><EndDate>{end_date}</EndDate></XML>').encode()


def records_of(reply: bytes):
    """(element name, {field: text}) for each child of <XML>."""
    root = ET.fromstring(reply)
    return [(child.tag, {f.tag: (f.text or "") for f in child}) for child in root]


def request_xml(name, tenant="demo", key=DEMO_KEY, action=ACTION) -> bytes:
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<XML>']
    if tenant is not None or key is not None:
        parts.append("<Tenant>")
        if tenant is not None:
            parts.append(f"<Name>{escape(tenant)}</Name>")
        if key is not None:
            parts.append(f"<Auth>{escape(key)}</Auth>")
        parts.append("</Tenant>")
    if action is not None:
        parts.append(f"<ActionName>{escape(action)}</ActionName>")
    if name is not None:
        parts.append(f"<FileName>{escape(name)}</FileName>")
    parts.append("</XML>")
    return "".join(parts).encode()


def error_of(body: bytes) -> str | None:
    node = ET.fromstring(body).find("Error")
    return None if node is None else node.text


def audio_of(body: bytes, shape="callrecording") -> tuple[str, bytes]:
    root = ET.fromstring(body)
    holder = root.find("CallRecording") if shape == "callrecording" else root
    assert holder is not None, body[:200]
    return holder.findtext("fileName"), base64.b64decode(holder.findtext("audioData") or "")


def synthetic_header(data: bytes) -> dict:
    (riff, riff_size, wave, fmt, fmt_size, tag, channels, rate, byte_rate, align, bits,
     cb, spb, fact, fact_size, samples, data_id, data_size) = struct.unpack(
        "<4sI4s4sIHHIIHHHH4sII4sI", data[:60])
    return dict(riff=riff, riff_size=riff_size, wave=wave, fmt=fmt, tag=tag,
                channels=channels, rate=rate, align=align, data_id=data_id,
                data_size=data_size)


class MockSelfCheck(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="euphoria-mock-test-")
        cls.recdir = os.path.join(cls.tmp, "acme-recs")
        os.makedirs(cls.recdir)
        cls.acme_files = {"pbx1-1700000000.1-200.WAV": os.urandom(3000), WEIRD: os.urandom(777)}
        for name, data in cls.acme_files.items():
            with open(os.path.join(cls.recdir, name), "wb") as f:
                f.write(data)
        cls.mock = Mock(os.path.join(cls.tmp, "state"), "--demo",
                        "--tenant", f"acme:acme-key:{cls.recdir}")

    @classmethod
    def tearDownClass(cls):
        cls.mock.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        m = self.mock
        m.ctl("POST", "/fault/clear")
        m.ctl("POST", "/hold/clear")
        m.ctl("POST", "/config", {"latency": 0, "limit": 3, "name_latency": {},
                                  "shape": "callrecording", "wrap": 0, "with_status": False,
                                  "missing_mode": "empty", "pace": 0,
                                  "listing": "on", "page_cap": 0, "server_zone": 0,
                                  "record_element": "CallRecording", "date_format": "iso",
                                  "tenant_deny": {"demo": False, "acme": False}})
        m.ctl("POST", "/reset")

    # --- transport -------------------------------------------------------------------
    def test_tls_certificate_and_ports_file(self):
        m = self.mock
        with open(os.path.join(m.state_dir, "ports.json")) as f:
            ports = json.load(f)
        self.assertEqual(ports, {"api": m.api_port, "control": m.control_port,
                                 "pid": m.proc.pid})
        for host in ("127.0.0.1", "localhost"):  # both subjectAltNames verify
            conn = m.connect(host)
            status, ctype, _, body = m.call(DEMO_NAMES[0], conn=conn)
            conn.close()
            self.assertEqual((status, ctype), (200, "text/xml; charset=utf-8"))
        untrusted = http.client.HTTPSConnection("127.0.0.1", m.api_port, timeout=10,
                                                context=ssl.create_default_context())
        with self.assertRaises(ssl.SSLCertVerificationError):
            untrusted.request("POST", API, body=b"<XML/>")
        untrusted.close()

    def test_keepalive_connection_and_handshake_counters(self):
        m = self.mock
        conn = m.connect()
        for name in DEMO_NAMES:
            self.assertEqual(m.call(name, conn=conn)[0], 200)
        conn.close()
        # A TCP connection that never does TLS: counted as a connection only.
        socket.create_connection(("127.0.0.1", m.api_port)).close()
        deadline = time.time() + 5
        while m.stats()["connections"] < 2 and time.time() < deadline:
            time.sleep(0.02)
        s = m.stats()
        self.assertEqual((s["connections"], s["handshakes"], s["total_calls"]), (2, 1, 3))
        self.assertEqual(s["calls"], {n: 1 for n in DEMO_NAMES})
        m.ctl("POST", "/reset")
        s = m.stats()
        self.assertEqual((s["connections"], s["handshakes"], s["total_calls"], s["calls"],
                          s["max_in_flight"], s["last_request"]), (0, 0, 0, {}, 0, None))

    def test_paths(self):
        m = self.mock
        status, _, _, body = m.call(DEMO_NAMES[0], path=ALT_API)
        self.assertEqual(status, 200)
        self.assertGreater(len(audio_of(body)[1]), 1000)
        status, ctype, _, body = m.call(DEMO_NAMES[0], path="/api.aspx")
        self.assertEqual((status, ctype.split(";")[0]), (404, "text/html"))
        conn = m.connect()
        conn.request("GET", API)
        resp = conn.getresponse()
        resp.read()
        self.assertEqual(resp.status, 405)
        # The connection is still usable after those.
        self.assertEqual(m.call(DEMO_NAMES[0], conn=conn)[0], 200)
        conn.close()

    # --- errors -----------------------------------------------------------------------
    def test_error_strings_and_decision_order(self):
        m = self.mock
        good = request_xml("x.WAV")
        cases = [
            (b"not xml at all", "Input XML not loaded"),
            (b"<XML><Tenant>", "Input XML not loaded"),
            (b'<!DOCTYPE XML [<!ENTITY a "b">]>' + good[good.index(b"<XML>"):],
             "Input XML not loaded"),
            (good.replace(b"<XML>", b"<xml>").replace(b"</XML>", b"</xml>"),
             "No Document Element"),
            (request_xml("x.WAV", tenant=None, key=None), "Authorization Failed"),
            (request_xml("x.WAV", key=None), "Authorization Failed"),
            (request_xml("x.WAV", key="wrong"), "Authorization Failed"),
            (request_xml("x.WAV", tenant="nobody"), "Authorization Failed"),
            (request_xml("x.WAV", key="wrong", action="Bogus"), "Authorization Failed"),
            (request_xml("x.WAV", action=None), "No Action Defined"),
            (request_xml("x.WAV", action="  "), "No Action Defined"),
            (request_xml(None, action="GetCallRecordings"),
             "Incorrect Input Parameters. Please check documentation"),
            (request_xml("x", action="DownloadCallRecordingByUniqueId"),
             "Incorrect Input Parameters. Please check documentation"),
            (request_xml(None, action="Bogus"), "Action Name Not Found"),
            (request_xml(None), "Incorrect Input Parameters. Please check documentation"),
            (request_xml(""), "Incorrect Input Parameters. Please check documentation"),
        ]
        for body, expected in cases:
            with self.subTest(body=body):
                status, ctype, length, reply = m.post(body)
                self.assertEqual((status, ctype), (200, "text/xml; charset=utf-8"))
                self.assertEqual(reply, ERROR_PREFIX + f" <Error>{expected}</Error>\n</XML>"
                                 .encode())
                self.assertEqual(length, len(reply))
        # The server trims the action name (the reference's example has a trailing space).
        m.add("x.WAV", b"hello")
        self.assertEqual(audio_of(m.post(request_xml("x.WAV", action=f" {ACTION} \n"))[3]),
                         ("x.WAV", b"hello"))
        # Deny (step 6) comes before the missing FileName (step 7).
        m.ctl("POST", "/config", {"tenant_deny": {"demo": True}})
        self.assertEqual(error_of(m.post(request_xml(None))[3]), "Permission Denied")
        self.assertEqual(error_of(m.call("x.WAV", "acme", "acme-key")[3]), None)
        m.ctl("POST", "/config", {"tenant_deny": {"demo": False}})
        # The FileName check (7) comes before the limit (8), the limit before faults (9).
        m.ctl("POST", "/config", {"limit": 0})
        m.fault("x.WAV", "error:Sip Server not found")
        self.assertEqual(error_of(m.post(request_xml(""))[3]),
                         "Incorrect Input Parameters. Please check documentation")
        self.assertEqual(error_of(m.call("x.WAV")[3]), "Concurrent API Calls Exceeded")
        m.ctl("POST", "/config", {"limit": 3})
        self.assertEqual(error_of(m.call("x.WAV")[3]), "Sip Server not found")
        s = m.stats()
        self.assertEqual(s["auth_failures"], 5)
        self.assertEqual(s["exceeded"], 1)
        self.assertEqual(s["total_calls"], len(cases) + 6)
        self.assertEqual(s["calls"], {"x.WAV": 3})  # only calls that reached step 9

    def test_with_status_option(self):
        m = self.mock
        m.ctl("POST", "/config", {"with_status": True})
        reply = m.call("x", key="bad")[3]
        self.assertIn(b"<Status>Failed</Status>", reply)
        self.assertEqual(error_of(reply), "Authorization Failed")
        m.ctl("POST", "/config", {"with_status": False})
        self.assertNotIn(b"<Status>", m.call("x", key="bad")[3])
        m.ctl("POST", "/tenant", {"name": "acme", "with_status": True})
        self.assertIn(b"<Status>Failed</Status>", m.call(None, "acme", "acme-key")[3])
        m.ctl("POST", "/tenant", {"name": "acme", "with_status": None})
        self.assertNotIn(b"<Status>", m.call(None, "acme", "acme-key")[3])
        m.fault("f.WAV", "error:I'm sorry, connection to one or more of the databases failed",
                times=1, with_status=True)
        reply = m.call("f.WAV")[3]
        self.assertIn(b"<Status>Failed</Status>", reply)
        self.assertEqual(error_of(reply),
                         "I'm sorry, connection to one or more of the databases failed")

    def test_last_request_never_holds_the_key(self):
        m = self.mock
        m.call(WEIRD)
        s = m.stats()
        self.assertEqual(s["last_request"]["tenant"], "demo")
        self.assertEqual(s["last_request"]["action"], ACTION)
        self.assertEqual(s["last_request"]["filename"], WEIRD)
        self.assertIs(s["last_request"]["auth_present"], True)
        self.assertNotIn(DEMO_KEY, json.dumps(s))
        m.call("y", key=None)
        self.assertIs(m.stats()["last_request"]["auth_present"], False)

    # --- recordings and reply shapes --------------------------------------------------
    def test_names_with_metacharacters_and_unicode(self):
        m = self.mock
        for name in (WEIRD, UNICODE, "with space .WAV", " lead-and-trail-space.WAV "):
            data = os.urandom(1234)
            m.add(name, data)
            status, _, length, body = m.call(name)
            self.assertEqual(audio_of(body), (name, data))
            self.assertEqual(length, len(body))
            self.assertEqual(m.raw_recording(name), (200, data))
        # Exact match: the stripped name is another (missing) recording.
        self.assertEqual(audio_of(m.call("lead-and-trail-space.WAV")[3])[1], b"")
        # Files of a --tenant RECDIR, file name = recording name.
        for name, data in self.acme_files.items():
            self.assertEqual(audio_of(m.call(name, "acme", "acme-key")[3]), (name, data))
        self.assertEqual(audio_of(m.call(WEIRD, "acme", "acme-key")[3])[1],
                         self.acme_files[WEIRD])

    def test_synthetic_recording(self):
        m = self.mock
        info = m.ctl("POST", "/recording", {"tenant": "demo", "name": "syn.WAV",
                                            "size": 200_001})
        self.assertEqual(info["size"], 200_001)
        status, raw = m.raw_recording("syn.WAV")
        self.assertEqual(len(raw), 200_001)
        self.assertEqual(hashlib.sha256(raw).hexdigest(), info["sha256"])
        self.assertEqual(audio_of(m.call("syn.WAV")[3])[1], raw)
        h = synthetic_header(raw)
        self.assertEqual((h["riff"], h["wave"], h["fmt"], h["data_id"]),
                         (b"RIFF", b"WAVE", b"fmt ", b"data"))
        self.assertEqual((h["riff_size"], h["data_size"]), (200_001 - 8, 200_001 - 60))
        self.assertEqual((h["tag"], h["channels"], h["rate"], h["align"]), (0x31, 1, 8000, 65))
        # Deterministic from the name; another name gives other bytes.
        again = m.ctl("POST", "/recording", {"name": "syn.WAV", "size": 200_001})
        self.assertEqual(again["sha256"], info["sha256"])
        other = m.ctl("POST", "/recording", {"name": "syn2.WAV", "size": 200_001})
        self.assertNotEqual(other["sha256"], info["sha256"])
        # 1 MiB blocks never repeat.
        m.ctl("POST", "/recording", {"name": "syn3.WAV", "size": 60 + 3 * 2**20})
        raw = m.raw_recording("syn3.WAV")[1][60:]
        self.assertEqual(len({raw[i:i + 4096] for i in range(0, len(raw), 2**20)}), 3)
        if shutil.which("soxi"):
            path = os.path.join(self.tmp, "syn.wav")
            with open(path, "wb") as f:
                f.write(m.raw_recording("syn.WAV")[1])
            out = subprocess.run(["soxi", path], capture_output=True, text=True)
            self.assertIn("GSM", out.stdout)
        # Delete: the recording is then missing (empty audioData).
        self.assertEqual(m.ctl("DELETE", "/recording?tenant=demo&name=syn.WAV"),
                         {"deleted": True})
        self.assertEqual(audio_of(m.call("syn.WAV")[3]), ("syn.WAV", b""))
        self.assertEqual(m.raw_recording("syn.WAV")[0], 404)

    def test_demo_recordings_are_real_gsm_speech(self):
        m = self.mock
        listed = m.ctl("GET", "/recordings?tenant=demo")["recordings"]
        self.assertTrue(set(DEMO_NAMES) <= {r["name"] for r in listed})
        for name in DEMO_NAMES:
            path = os.path.join(m.state_dir, "demo-recordings", name)
            with open(path, "rb") as f:
                data = f.read()
            self.assertEqual(audio_of(m.call(name)[3]), (name, data))
            h = synthetic_header(data)
            self.assertEqual((h["riff"], h["tag"], h["rate"], h["channels"]),
                             (b"RIFF", 0x31, 8000, 1))
            self.assertEqual(h["riff_size"], len(data) - 8)
            self.assertGreater(len(data), 3000)  # a couple of seconds of speech

    def test_shape_and_wrap(self):
        m = self.mock
        for size in (0, 1, 2, 3, 56, 57, 58, 1000, 300_000):
            data = os.urandom(size)
            m.add("w.WAV", data)
            for wrap in (0, 76, 4, 7):
                with self.subTest(size=size, wrap=wrap):
                    m.ctl("POST", "/config", {"wrap": wrap})
                    _, _, length, body = m.call("w.WAV")
                    self.assertEqual(length, len(body))
                    self.assertEqual(audio_of(body)[1], data)
                    text = body.split(b"<audioData>")[1].split(b"</audioData>")[0]
                    lines = text.split(b"\r\n")
                    if wrap and size:
                        self.assertTrue(all(len(line) == wrap for line in lines[:-1]))
                        self.assertTrue(0 < len(lines[-1]) <= wrap)
                        self.assertNotIn(b"\n", text.replace(b"\r\n", b""))
                    else:
                        self.assertEqual(len(lines), 1)
        m.ctl("POST", "/config", {"wrap": 0, "shape": "flat"})
        body = m.call("w.WAV")[3]
        self.assertIsNone(ET.fromstring(body).find("CallRecording"))
        self.assertEqual(audio_of(body, "flat")[1], data)
        # Per-recording options beat the global ones.
        m.add("r.WAV", b"per-recording options", shape="callrecording", wrap=8)
        body = m.call("r.WAV")[3]
        self.assertIn(b"\r\n", body)
        self.assertEqual(audio_of(body)[1], b"per-recording options")

    def test_missing_recording_modes(self):
        m = self.mock
        body = m.call("nope.WAV")[3]
        self.assertTrue(body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n'))
        self.assertIn(b"<XML><CallRecording><fileName>nope.WAV</fileName>"
                      b"<audioData></audioData></CallRecording></XML>", body)
        m.ctl("POST", "/config", {"missing_mode": "username_error"})
        self.assertEqual(error_of(m.call("nope.WAV")[3]),
                         "That username is not part of this Tenant")
        m.ctl("POST", "/config", {"missing_mode": "empty"})
        m.ctl("POST", "/tenant", {"name": "demo", "missing_mode": "username_error"})
        self.assertEqual(error_of(m.call("nope.WAV")[3]),
                         "That username is not part of this Tenant")
        m.ctl("POST", "/tenant", {"name": "demo", "missing_mode": None})
        self.assertEqual(audio_of(m.call("nope.WAV")[3]), ("nope.WAV", b""))

    def test_add_tenant(self):
        m = self.mock
        m.ctl("POST", "/tenant", {"name": "newco", "key": "k-newco"})
        m.add("n.WAV", b"newco data", tenant="newco")
        self.assertEqual(audio_of(m.call("n.WAV", "newco", "k-newco")[3])[1], b"newco data")
        self.assertEqual(error_of(m.call("n.WAV", "newco", DEMO_KEY)[3]),
                         "Authorization Failed")
        self.assertEqual(audio_of(m.call("n.WAV")[3])[1], b"")  # not demo's

    # --- concurrency and latency ------------------------------------------------------
    def test_concurrency_limit_and_latency(self):
        m = self.mock
        m.add("c.WAV", b"concurrent")
        m.ctl("POST", "/config", {"latency": 0.3, "name_latency": {"c.WAV": 0.5}})
        results = {}

        def call(key, tenant="demo", auth=DEMO_KEY):
            start = time.monotonic()
            body = m.call("c.WAV", tenant, auth)[3]
            end = time.monotonic()
            results[key] = (error_of(body), end - start, end)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        deadline = time.time() + 5
        while m.stats()["in_flight"] < 3 and time.time() < deadline:
            time.sleep(0.01)
        extra = [threading.Thread(target=call, args=("4th",)),
                 threading.Thread(target=call, args=("acme", "acme", "acme-key"))]
        for t in extra:
            t.start()
        for t in threads + extra:
            t.join()
        for i in range(3):
            self.assertEqual(results[i][0], None)
            self.assertGreaterEqual(results[i][1], 0.8)  # global + per-name latency
        self.assertEqual(results["4th"][0], "Concurrent API Calls Exceeded")
        # Refused at once: before any of the three it was refused for had ended, so
        # it never waited for a slot (an order, not a time, so load cannot fake it).
        self.assertLess(results["4th"][2], min(results[i][2] for i in range(3)))
        self.assertEqual(results["acme"][0], None)  # the limit is per tenant
        # A slot is released once the server's write of the last byte returns, which
        # can be just after the client has read it: wait for the release, not a time.
        deadline = time.time() + 5
        while m.stats()["in_flight"] and time.time() < deadline:
            time.sleep(0.01)
        s = m.stats()
        self.assertEqual((s["exceeded"], s["max_in_flight"], s["in_flight"]), (1, 4, 0))
        self.assertEqual(s["calls"], {"c.WAV": 4})

    def test_foreign_client_holds_slots(self):
        m = self.mock
        m.add("h.WAV", b"held")
        exceeded = "Concurrent API Calls Exceeded"
        # All three slots held: refused at once, counted as exceeded, never as a call.
        held = m.ctl("POST", "/hold", {"tenant": "demo", "slots": 3, "seconds": 30})
        self.assertEqual((held["tenant"], held["held"], held["in_flight"]), ("demo", 3, 0))
        start = time.monotonic()
        self.assertEqual(error_of(m.call("h.WAV")[3]), exceeded)
        self.assertLess(time.monotonic() - start, 5)  # not after the 30 s hold
        s = m.stats()
        self.assertEqual((s["held"], s["exceeded"], s["total_calls"], s["calls"],
                          s["in_flight"], s["max_in_flight"]), (3, 1, 1, {}, 0, 0))
        self.assertEqual(s["tenants"]["demo"], {"in_flight": 0, "max_in_flight": 0, "held": 3})
        self.assertEqual(s["tenants"]["acme"]["held"], 0)
        # The limit is per tenant: acme is not affected.
        self.assertEqual(error_of(m.call("x.WAV", "acme", "acme-key")[3]), None)
        # Holds are state, not counters: a reset keeps them.
        m.ctl("POST", "/reset")
        self.assertEqual(m.stats()["held"], 3)
        self.assertEqual(m.ctl("POST", "/hold/clear"), {"released": 3})
        self.assertEqual(audio_of(m.call("h.WAV")[3])[1], b"held")

        # Two held, one free: one call of ours runs, a second beside it is refused.
        m.ctl("POST", "/reset")
        m.ctl("POST", "/hold", {"slots": 2, "seconds": 30})  # tenant demo by default
        m.ctl("POST", "/config", {"name_latency": {"h.WAV": 1.0}})
        result = {}
        slow = threading.Thread(target=lambda: result.update(body=m.call("h.WAV")[3]))
        slow.start()
        deadline = time.time() + 5
        while m.stats()["in_flight"] < 1 and time.time() < deadline:
            time.sleep(0.01)
        self.assertEqual(error_of(m.call("other.WAV")[3]), exceeded)
        slow.join()
        self.assertEqual(audio_of(result["body"])[1], b"held")
        s = m.stats()
        self.assertEqual((s["held"], s["exceeded"], s["max_in_flight"], s["calls"]),
                         (2, 1, 1, {"h.WAV": 1}))
        self.assertEqual(s["tenants"]["demo"]["max_in_flight"], 1)
        m.ctl("POST", "/config", {"name_latency": {}})
        # Holds add up; a tenant-scoped clear leaves other tenants' holds.
        m.ctl("POST", "/hold", {"tenant": "acme", "slots": 1, "seconds": 30})
        m.ctl("POST", "/hold", {"slots": 1, "seconds": 30})
        self.assertEqual(m.stats()["tenants"]["demo"]["held"], 3)
        self.assertEqual(m.ctl("POST", "/hold/clear", {"tenant": "demo"}), {"released": 3})
        self.assertEqual(m.stats()["held"], 1)
        self.assertEqual(m.ctl("POST", "/hold/clear"), {"released": 1})

        # A hold runs out by itself after its seconds.
        m.ctl("POST", "/hold", {"slots": 3, "seconds": 0.5})
        start = time.time()
        self.assertEqual(error_of(m.call("h.WAV")[3]), exceeded)
        deadline = start + 5
        while m.stats()["held"] and time.time() < deadline:
            time.sleep(0.02)
        released_after = time.time() - start
        self.assertGreaterEqual(released_after, 0.4)
        self.assertLess(released_after, 1.5)
        self.assertEqual(audio_of(m.call("h.WAV")[3])[1], b"held")

        for bad in ({"slots": 0, "seconds": 1}, {"slots": "3", "seconds": 1},
                    {"slots": True, "seconds": 1}, {"slots": 3}, {"slots": 3, "seconds": -1},
                    {"slots": 3, "seconds": 1, "tenant": "nobody"}):
            with self.subTest(bad=bad):
                self.assertEqual(m.control("POST", "/hold", bad)[0], 400)
        self.assertEqual(m.control("POST", "/hold/clear", {"tenant": "nobody"})[0], 400)
        self.assertEqual(m.stats()["held"], 0)

    def test_pace_slows_the_reply_body(self):
        m = self.mock
        data = os.urandom(45_000)  # 60,000 base64 characters
        m.add("p.WAV", data)
        start = time.monotonic()
        self.assertEqual(audio_of(m.call("p.WAV")[3])[1], data)
        unpaced = time.monotonic() - start
        self.assertEqual(m.ctl("POST", "/config", {"pace": 100_000})["pace"], 100_000)
        conn = m.connect()
        start = time.time()
        conn.request("POST", API, body=request_xml("p.WAV"))
        resp = conn.getresponse()
        first = resp.read(1000)
        first_at = time.time() - start
        body = first + resp.read()
        elapsed = time.time() - start
        conn.close()
        self.assertEqual(audio_of(body)[1], data)
        self.assertGreaterEqual(elapsed, 0.55)  # 60,130 bytes at 100,000 B/s
        # It streams: the head comes long before the end. And pacing, not load, made
        # it slow: the same reply unpaced took a fraction of that.
        self.assertLess(first_at, elapsed / 2)
        self.assertLess(unpaced, elapsed / 2)
        self.assertLess(elapsed, 10.0)
        # Errors are not paced.
        m.ctl("POST", "/config", {"pace": 1})
        start = time.monotonic()
        self.assertEqual(error_of(m.call("p.WAV", key="bad")[3]), "Authorization Failed")
        self.assertLess(time.monotonic() - start, 10)  # paced at 1 B/s it would take minutes
        for bad in (-1, 1.5, True, "fast"):
            self.assertEqual(m.control("POST", "/config", {"pace": bad})[0], 400)

    # --- faults -----------------------------------------------------------------------
    def test_faults(self):
        m = self.mock
        data = os.urandom(10_000)
        m.add("f.WAV", data)
        _, _, full_length, _ = m.call("f.WAV")

        m.fault("f.WAV", "error:Sip Server not found", times=1)
        self.assertEqual(error_of(m.call("f.WAV")[3]), "Sip Server not found")
        self.assertEqual(audio_of(m.call("f.WAV")[3])[1], data)  # cleared after 1

        m.fault("f.WAV", "http:503", times=1)
        status, ctype, _, body = m.call("f.WAV")
        self.assertEqual((status, ctype.split(";")[0]), (503, "text/html"))

        m.fault("f.WAV", "html", times=1)
        status, ctype, _, body = m.call("f.WAV")
        self.assertEqual((status, ctype.split(";")[0]), (200, "text/html"))
        self.assertIn(b"<html>", body)

        m.fault("f.WAV", "garbage", times=1)
        status, _, _, body = m.call("f.WAV")
        self.assertEqual((status, len(body)), (200, 4096))

        m.fault("f.WAV", "corrupt", times=1)
        body = m.call("f.WAV")[3]
        text = ET.fromstring(body).find("CallRecording").findtext("audioData")
        self.assertIn("!", text)
        with self.assertRaises(binascii.Error):
            base64.b64decode(text, validate=True)

        m.fault("f.WAV", "doctype", times=1)
        body = m.call("f.WAV")[3]
        self.assertTrue(body.startswith(b'<!DOCTYPE XML [<!ENTITY xxe SYSTEM "file:///etc/passwd">'))
        self.assertIn(b"<audioData>&xxe;&b;</audioData>", body)

        m.fault("f.WAV", "empty", times=1)
        self.assertEqual(audio_of(m.call("f.WAV")[3]), ("f.WAV", b""))

        for spec, expect in (("truncate:100", 100), ("truncate:-10", full_length - 10)):
            m.fault("f.WAV", spec, times=1)
            conn = m.connect()
            conn.request("POST", API, body=request_xml("f.WAV"))
            resp = conn.getresponse()
            self.assertEqual(int(resp.getheader("Content-Length")), full_length)
            with self.assertRaises(http.client.IncompleteRead) as cm:
                resp.read()
            self.assertEqual(len(cm.exception.partial), expect)
            conn.close()

        m.fault("f.WAV", "stall:1", times=1)
        conn = m.connect()
        conn.request("POST", API, body=request_xml("f.WAV"))
        resp = conn.getresponse()
        start = time.monotonic()
        first = resp.read(full_length // 2)
        first_at = time.monotonic() - start
        with self.assertRaises(http.client.IncompleteRead):
            resp.read()
        stalled = time.monotonic() - start
        self.assertGreaterEqual(stalled, 0.9)
        self.assertLess(first_at, stalled / 2)  # the head arrived before the stall
        self.assertEqual(len(first), full_length // 2)
        conn.close()

        m.fault("f.WAV", "reset", times=1)
        with self.assertRaises(ConnectionResetError):
            m.call("f.WAV")

        # Forever (the default) until cleared; tenant-specific; queued in order.
        m.fault("f.WAV", "http:500", tenant="acme")
        m.add("f.WAV", data, tenant="acme")
        self.assertEqual(m.call("f.WAV", "acme", "acme-key")[0], 500)
        self.assertEqual(m.call("f.WAV", "acme", "acme-key")[0], 500)
        self.assertEqual(m.call("f.WAV")[0], 200)  # demo is not affected
        self.assertEqual(len(m.ctl("GET", "/faults")["faults"]), 1)
        m.ctl("POST", "/fault/clear")
        self.assertEqual(m.call("f.WAV", "acme", "acme-key")[0], 200)
        m.fault("f.WAV", "http:429", times=1)
        m.fault("f.WAV", "http:503", times=2)
        m.fault("*", "error:Permission Denied", times=2)  # any name, less specific
        self.assertEqual([m.call("f.WAV")[0] for _ in range(3)], [429, 503, 503])
        self.assertEqual(error_of(m.call("f.WAV")[3]), "Permission Denied")
        self.assertEqual(error_of(m.call("other.WAV")[3]), "Permission Denied")
        self.assertEqual(audio_of(m.call("f.WAV")[3])[1], data)
        self.assertEqual(m.ctl("GET", "/faults"), {"faults": []})

    # --- big recordings -----------------------------------------------------------------
    def test_100mb_recording_streams_fast(self):
        m = self.mock
        size = 100_000_000
        info = m.ctl("POST", "/recording", {"name": "big.WAV", "size": size})
        conn = m.connect()
        start = time.time()
        conn.request("POST", API, body=request_xml("big.WAV"))
        resp = conn.getresponse()
        length = int(resp.getheader("Content-Length"))
        digest = hashlib.sha256()
        carry = b""
        head = resp.read(200)
        carry = head.split(b"<audioData>", 1)[1]
        received = len(head)
        while chunk := resp.read(4 << 20):
            received += len(chunk)
            carry += chunk
            cut = len(carry) // 4 * 4
            block, carry = carry[:cut], carry[cut:]
            if b"<" in block:  # the footer is in this block
                block, carry = block.split(b"<", 1)[0], b""
            digest.update(base64.b64decode(block))
        elapsed = time.time() - start
        conn.close()
        self.assertEqual(received, length)
        self.assertEqual(digest.hexdigest(), info["sha256"])
        self.assertLess(elapsed, 15, f"100 MB took {elapsed:.1f} s")
        m.ctl("DELETE", "/recording?tenant=demo&name=big.WAV")

    # --- control API input checks -------------------------------------------------------
    # --- GetCallRecordings and DownloadCallRecordingByUniqueId ---------------------------
    def _lister(self, *recordings):
        m = self.mock
        m.ctl("POST", "/tenant", {"name": "lister", "key": "lister-key", "listing": None})
        for name in [r["name"] for r in m.ctl("GET", "/recordings?tenant=lister")["recordings"]]:
            m.ctl("DELETE", "/recording?" + urllib.parse.urlencode({"tenant": "lister",
                                                                    "name": name}))
        if recordings:
            m.ctl("POST", "/recordings", {"tenant": "lister", "recordings": list(recordings)})

    def test_listing_dates_paging_and_fields(self):
        m = self.mock
        # 2020-10-23 23:30 and 2020-10-24 00:30 UTC, then one a day later.
        self._lister({"name": "late.WAV", "size": 100, "call_time": 1603495800, "note": "n1"},
                     {"name": "early.WAV", "size": 120, "call_time": 1603499400},
                     {"name": "pbx4-1603585800.1-1.WAV", "size": 140},
                     {"name": "gone.WAV", "size": 100, "call_time": 1603495900, "deleted": True})
        reply = m.post(listing_xml("2020-10-23", "2020-10-23"))[3]
        recs = records_of(reply)
        self.assertEqual([r[1]["FileName"] for r in recs], ["late.WAV", "gone.WAV"])
        self.assertEqual(recs[0][0], "CallRecording")
        fields = recs[0][1]
        self.assertEqual(list(fields), ["uID", "MD5", "Direction", "Source", "Destination",
                                        "DateStamp", "FileName", "FileSize", "HasComment",
                                        "Flagged", "UniqueID", "IsDeleted", "Status", "CrmTag",
                                        "Note", "SipCallId"])
        self.assertEqual(fields["DateStamp"], "2020-10-23 23:30:00")
        self.assertEqual(fields["FileSize"], "100")
        self.assertEqual(fields["Note"], "n1")
        self.assertEqual(recs[1][1]["IsDeleted"], "1")
        # EndDate is inclusive.
        names = [r[1]["FileName"] for r in records_of(
            m.post(listing_xml("2020-10-23", "2020-10-24"))[3])]
        self.assertEqual(names, ["late.WAV", "gone.WAV", "early.WAV"])
        # The server's zone decides the date: at +2 h both calls are on the 24th.
        m.ctl("POST", "/config", {"server_zone": 2, "date_format": "iso_t"})
        recs = records_of(m.post(listing_xml("2020-10-24", "2020-10-24"))[3])
        self.assertEqual([r[1]["FileName"] for r in recs], ["late.WAV", "gone.WAV", "early.WAV"])
        self.assertEqual(recs[0][1]["DateStamp"], "2020-10-24T01:30:00")
        m.ctl("POST", "/config", {"server_zone": 0, "date_format": "us"})
        recs = records_of(m.post(listing_xml("2020-10-23", "2020-10-23"))[3])
        self.assertEqual(recs[0][1]["DateStamp"], "10/23/2020 11:30:00 PM")
        # Paging with startAt, and a server cap under what was asked.
        m.ctl("POST", "/config", {"page_cap": 2, "record_element": "Row"})
        page = records_of(m.post(listing_xml("2020-10-01", "2020-10-31", page_size=3))[3])
        self.assertEqual([r[0] for r in page], ["Row", "Row"])
        page2 = records_of(m.post(listing_xml("2020-10-01", "2020-10-31", page_size=3,
                                              start_at=2))[3])
        self.assertEqual([r[1]["FileName"] for r in page2], ["early.WAV", "pbx4-1603585800.1-1.WAV"])
        self.assertEqual(records_of(m.post(listing_xml("2020-10-01", "2020-10-31",
                                                       start_at=4))[3]), [])
        st = m.stats()
        self.assertEqual(st["listing_calls"], 7)
        self.assertEqual(st["in_flight"], 0)

    def test_listing_md5_and_overrides(self):
        m = self.mock
        data = b"RIFF" + os.urandom(200)
        self._lister({"name": "a.WAV", "data_b64": base64.b64encode(data).decode(),
                      "call_time": 1603495800},
                     {"name": "b.WAV", "size": 100, "call_time": 1603495801,
                      "md5": "0" * 32, "listed_size": 99})
        recs = {r[1]["FileName"]: r[1] for r in records_of(
            m.post(listing_xml("2020-10-23", "2020-10-23"))[3])}
        self.assertEqual(recs["a.WAV"]["MD5"], hashlib.md5(data).hexdigest())
        self.assertEqual(recs["a.WAV"]["FileSize"], str(len(data)))
        self.assertEqual(recs["b.WAV"]["MD5"], "0" * 32)
        self.assertEqual(recs["b.WAV"]["FileSize"], "99")

    def test_listing_errors(self):
        m = self.mock
        self._lister()
        self.assertEqual(error_of(m.post(listing_xml("2020-10-23", "bad"))[3]),
                         "Incorrect Input Parameters. Please check documentation")
        m.ctl("POST", "/config", {"listing": "denied"})
        self.assertEqual(error_of(m.post(listing_xml("2020-10-23", "2020-10-23"))[3]),
                         "Permission Denied")
        m.ctl("POST", "/config", {"listing": "unknown"})
        self.assertEqual(error_of(m.post(listing_xml("2020-10-23", "2020-10-23"))[3]),
                         "Action Name Not Found")
        m.ctl("POST", "/config", {"listing": "on"})
        m.ctl("POST", "/tenant", {"name": "lister", "listing": "denied"})
        self.assertEqual(error_of(m.post(listing_xml("2020-10-23", "2020-10-23"))[3]),
                         "Permission Denied")
        # Downloads by name are not affected.
        m.ctl("POST", "/recording", {"tenant": "lister", "name": "x.WAV", "size": 100})
        body = request_xml("x.WAV", "lister", "lister-key")
        self.assertEqual(error_of(m.post(body)[3]), None)
        m.ctl("POST", "/tenant", {"name": "lister", "listing": None})
        self.assertEqual(m.control("POST", "/config", {"listing": "maybe"})[0], 400)
        self.assertEqual(m.control("POST", "/config", {"record_element": "Error"})[0], 400)

    def test_download_by_unique_id(self):
        m = self.mock
        data = os.urandom(300)
        self._lister({"name": "pbx4-1603469421.1196632-1001.WAV",
                      "data_b64": base64.b64encode(data).decode()})

        def by_id(uid):
            return ('<XML><Tenant><Name>lister</Name><Auth>lister-key</Auth></Tenant>'
                    '<ActionName>DownloadCallRecordingByUniqueId</ActionName>'
                    f'<uniqueId>{uid}</uniqueId></XML>').encode()
        self.assertEqual(audio_of(m.post(by_id("1603469421.1196632"))[3]),
                         ("pbx4-1603469421.1196632-1001.WAV", data))
        self.assertEqual(audio_of(m.post(by_id("999.1"))[3]), ("", b""))
        self.assertEqual(m.stats()["by_id_calls"], 2)

    def test_control_rejects_bad_input(self):
        m = self.mock
        for method, path, obj in (
            ("POST", "/config", {"shape": "round"}),
            ("POST", "/config", {"limit": -1}),
            ("POST", "/config", {"latency": "slow"}),
            ("POST", "/config", {"with_status": 1}),
            ("POST", "/config", {"tenant_deny": {"nobody": True}}),
            ("POST", "/config", {"colour": "blue"}),
            ("POST", "/fault", {"name": "x", "fault": "explode"}),
            ("POST", "/fault", {"name": "x", "fault": "http:abc"}),
            ("POST", "/fault", {"name": "x", "fault": "html", "times": 0}),
            ("POST", "/fault", {"name": "x", "fault": "html", "tenant": "nobody"}),
            ("POST", "/recording", {"name": "x", "size": 10}),
            ("POST", "/recording", {"size": 100}),
            ("POST", "/recording", {"name": "x", "data_b64": "@@@"}),
            ("POST", "/recording", {"name": "x", "tenant": "nobody", "size": 100}),
            ("POST", "/tenant", {"name": "brandnew"}),
        ):
            with self.subTest(path=path, obj=obj):
                status, body = m.control(method, path, obj)
                self.assertEqual(status, 400)
                self.assertIn("error", json.loads(body))
        self.assertEqual(m.control("POST", "/config", raw=b"{not json")[0], 400)
        self.assertEqual(m.control("GET", "/nowhere")[0], 404)
        self.assertEqual(m.ctl("GET", "/config")["shape"], "callrecording")


class MockLifecycle(unittest.TestCase):
    """Default tenant, CLI options, certificate reuse, clean exit, quiet logs."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="euphoria-mock-life-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def test_default_tenant_signals_and_cert_reuse(self):
        state = os.path.join(self.tmp, "state")
        m = Mock(state, "--latency", "0.2", "--limit", "5", "--verbose")
        cfg = m.ctl("GET", "/config")
        self.assertEqual((cfg["latency"], cfg["limit"]), (0.2, 5))
        self.assertEqual(m.ctl("GET", "/recordings?tenant=demo"), {"recordings": []})
        self.assertEqual(audio_of(m.call("any.WAV")[3]), ("any.WAV", b""))
        self.assertEqual(error_of(m.call("any.WAV", key="x")[3]), "Authorization Failed")
        with open(m.ca, "rb") as f:
            ca = f.read()
        start = time.time()
        self.assertEqual(m.stop(signal.SIGTERM), 0)
        self.assertLess(time.time() - start, 3)
        self.assertFalse(os.path.exists(os.path.join(state, "ports.json")))

        m = Mock(state)  # same directory: the certificates are reused
        with open(m.ca, "rb") as f:
            self.assertEqual(f.read(), ca)
        # A stalled reply does not hold up shutdown.
        m.ctl("POST", "/config", {"latency": 30})
        conn = m.connect()
        conn.request("POST", API, body=request_xml("x"))
        time.sleep(0.2)
        start = time.time()
        self.assertEqual(m.stop(signal.SIGINT), 0)
        self.assertLess(time.time() - start, 3)
        conn.close()

    def test_verbose_log_never_shows_the_key(self):
        m = Mock(os.path.join(self.tmp, "state"), "--verbose")
        m.call("x.WAV")
        m.call("x.WAV", key="wrong-key-456")
        m.ctl("POST", "/shutdown")
        self.assertEqual(m.proc.wait(10), 0)
        log = m.proc.stderr.read().decode()
        m.stop()
        self.assertIn("x.WAV", log)
        self.assertNotIn(DEMO_KEY, log)
        self.assertNotIn("wrong-key-456", log)

    def test_demo_without_espeak_fails_clearly(self):
        state = os.path.join(self.tmp, "state")
        Mock(state).stop()  # leaves certificates, so openssl is not needed below
        bindir = os.path.join(self.tmp, "bin")
        os.makedirs(bindir)
        env = dict(os.environ, PATH=bindir)
        proc = subprocess.run([sys.executable, MOCK, "--state-dir", state, "--demo"],
                              env=env, capture_output=True, text=True, timeout=30)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("espeak-ng", proc.stderr)
        self.assertEqual(proc.stdout, "")


if __name__ == "__main__":
    unittest.main(verbosity=2)
