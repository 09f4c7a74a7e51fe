"""Tests of the Python client against a real herald (HERALD_BIN); skipped when it is not set,
except under CI=true."""

import base64
import hashlib
import hmac
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

from herald import Gap, Herald, HeraldError, Message

BIN = os.environ.get("HERALD_BIN")
if not BIN and os.environ.get("CI") == "true":
    raise RuntimeError("HERALD_BIN must be set under CI=true (go build -o bin/herald ./cmd/herald)")


@unittest.skipUnless(BIN, "HERALD_BIN is not set: go build -o bin/herald ./cmd/herald")
class HeraldTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="herald-py-")
        cls.proc = subprocess.Popen(
            [BIN, "serve", "--addr", "127.0.0.1:0", "--engine", "memory", "--data-dir", cls.dir, "--sse-retry", "100ms"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = cls.proc.stdout.readline()  # "Herald is listening on http://127.0.0.1:PORT"
        if "listening on" not in line:
            cls.proc.kill()
            raise RuntimeError("herald did not start: " + line)
        cls.url = line.split()[-1]
        with open(os.path.join(cls.dir, "publisher.key")) as f:
            cls.key = f.read().strip()

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait(10)
        cls.proc.stdout.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def client(self, **kw):
        return Herald(self.url, self.key, timeout=5, **kw)

    def history(self, topic):
        with urllib.request.urlopen(f"{self.url}/history?topic={topic}", timeout=5) as r:
            return json.loads(r.read())["messages"]

    def test_publish(self):
        h = self.client()
        i1 = h.publish("py/one", "hello", event="greeting")
        i2 = h.publish("py/one", {"status": "paid"})
        i3 = h.publish(["py/one", "py/two"], b"bytes")
        got = [(m["id"], m["data"], m.get("event")) for m in self.history("py/one")]
        self.assertEqual(got, [(i1, "hello", "greeting"), (i2, '{"status":"paid"}', None), (i3, "bytes", None)])

    def test_idempotency_key(self):
        h = self.client()
        first = h.publish("py/idem", "x", idempotency_key="order-42-paid")
        again = h.publish("py/idem", "x", idempotency_key="order-42-paid")
        self.assertEqual(first, again)
        self.assertEqual(len(self.history("py/idem")), 1)

    def test_publish_batch(self):
        ids = self.client().publish_batch([
            {"topic": "py/batch", "data": "1"},
            {"topic": "py/batch", "data": "2", "event": "e"},
            {"topic": "py/batch", "data": "3", "retain": True},
        ])
        self.assertEqual(len(ids), 3)
        self.assertEqual([m["id"] for m in self.history("py/batch")], ids)

    def test_client_errors_carry_the_server_message(self):
        cases = [
            ("unknown key", Herald(self.url, "wrong"), "py/x", 401, "unauthorized"),
            ("bad topic", self.client(), "bad topic", 400, "bad_topic"),
        ]
        for name, h, topic, status, code in cases:
            with self.subTest(name):
                with self.assertRaises(HeraldError) as cm:
                    h.publish(topic, "x")
                self.assertEqual((cm.exception.status, cm.exception.code), (status, code))
                self.assertTrue(cm.exception.message, "the server's explanation")

    def test_retry_reuses_the_idempotency_key(self):
        # A proxy that stores the first publish at the server but loses its answer (502).
        calls = []
        upstream = self.url

        class Proxy(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                calls.append(body)
                req = urllib.request.Request(upstream + self.path, data=body, method="POST", headers={
                    k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization", "idempotency-key")})
                with urllib.request.urlopen(req, timeout=5) as r:
                    answer = r.read()
                self.send_response(502 if len(calls) == 1 else 200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}" if len(calls) == 1 else answer)

            def log_message(self, *args):
                pass

        proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
        t = threading.Thread(target=proxy.serve_forever)
        t.start()
        try:
            h = Herald(f"http://127.0.0.1:{proxy.server_port}", self.key, timeout=5, retries=2, max_backoff=0.05)
            msg_id = h.publish("py/retry", "once")
        finally:
            proxy.shutdown()
            proxy.server_close()
            t.join()
        self.assertEqual(len(calls), 2)
        self.assertEqual(json.loads(calls[0])["idempotencyKey"], json.loads(calls[1])["idempotencyKey"])
        self.assertEqual([m["id"] for m in self.history("py/retry")], [msg_id], "stored once")

    def test_unreachable_server(self):
        h = Herald("http://127.0.0.1:9", self.key, timeout=1, retries=2, max_backoff=0.01)
        start = time.monotonic()
        with self.assertRaises(HeraldError) as cm:
            h.publish("py/x", "x")
        self.assertIsNone(cm.exception.status)
        self.assertLess(time.monotonic() - start, 5)

    def test_subscribe(self):
        h = self.client()
        h.publish("py/sub/a", "current", retain=True)
        it = h.subscribe(["py/sub/*"], timeout=5)
        first = next(it)  # the retained value: from here on the subscription is live
        self.assertEqual((first.topic, first.data), ("py/sub/a", "current"))
        sent = h.publish("py/sub/b", "line one\nline two", event="note")
        m = next(it)
        self.assertEqual(m, Message(id=sent, topic="py/sub/b", data="line one\nline two", event="note",
                                    topics=["py/sub/b"], time=m.time))
        it.close()

    def test_subscribe_gap(self):
        h = self.client()
        it = h.subscribe(["py/gap"], last_id="m0ld-3", timeout=5)
        g = next(it)
        self.assertIsInstance(g, Gap)
        self.assertEqual((g.reason, g.last_event_id), ("epoch", "m0ld-3"))
        it.close()


class TokenTest(unittest.TestCase):
    def test_subscriber_token(self):
        h = Herald("http://unused", token_secret="s3cret")
        tok = h.subscriber_token("user-7", subscribe=["orders/7", "news/*"], ttl=600)
        header, body, sig = tok.split(".")
        want = hmac.new(b"s3cret", f"{header}.{body}".encode(), hashlib.sha256).digest()
        self.assertEqual(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)), want)
        pad = lambda s: s + "=" * (-len(s) % 4)
        self.assertEqual(json.loads(base64.urlsafe_b64decode(pad(header))), {"alg": "HS256", "typ": "JWT"})
        claims = json.loads(base64.urlsafe_b64decode(pad(body)))
        self.assertEqual(set(claims), {"sub", "exp", "herald"})
        self.assertEqual(claims["sub"], "user-7")
        self.assertEqual(claims["herald"], {"subscribe": ["orders/7", "news/*"], "publish": []})
        self.assertAlmostEqual(claims["exp"], time.time() + 600, delta=5)
        self.assertNotIn("=", tok)

    def test_token_needs_a_secret(self):
        with self.assertRaises(ValueError):
            Herald("http://unused").subscriber_token("u", subscribe=["t"])


if __name__ == "__main__":
    unittest.main()
