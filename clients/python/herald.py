"""Publish to Herald from Python, with nothing but the standard library.

    from herald import Herald

    h = Herald("http://localhost:8080", key=open("herald-data/publisher.key").read().strip())
    message_id = h.publish("orders/42", {"status": "paid"}, event="order.updated")

Retries are safe: every publish carries an idempotency key (one is generated when you give none),
and a retry after a connection error or a 5xx answer reuses it, so the server stores the message
once even when the first answer was lost.

subscriber_token() mints the short-lived HS256 token a page needs to subscribe, and subscribe()
is a small Server-Sent Events reader for scripts and tests.
"""

import base64
import hashlib
import hmac
import json
import random
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Iterable, Iterator, List, Optional, Union

__all__ = ["Herald", "HeraldError", "Message", "Gap"]
__version__ = "0.1.0"


class HeraldError(Exception):
    """The server refused a request (status 4xx, or 5xx after the retries), or could not be reached.

    status is the HTTP status (None when the server could not be reached), code the server's error
    code ("unauthorized", "bad_topic", "too_large", ...) and message its explanation.
    """

    def __init__(self, status: Optional[int], code: str, message: str):
        self.status, self.code, self.message = status, code, message
        where = f"{status} {code}" if status else code
        super().__init__(f"herald: {where}: {message}")


@dataclass
class Message:
    """A message received by subscribe()."""

    id: str
    topic: str
    data: str
    event: Optional[str] = None
    topics: List[str] = field(default_factory=list)
    time: Optional[str] = None

    def json(self):
        """The data parsed as JSON."""
        return json.loads(self.data)


@dataclass
class Gap:
    """subscribe() could not resume exactly after last_event_id: reload your state."""

    reason: str
    last_event_id: str
    message: str


Data = Union[str, bytes, dict, list, int, float, bool, None]


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


class Herald:
    """A client of one Herald server.

    key is a publisher key. timeout bounds each attempt, in seconds. retries is how many more
    attempts follow a connection error or a 5xx answer. token_secret is the HS256 secret that the
    server verifies subscriber tokens with.
    """

    def __init__(self, url: str, key: Optional[str] = None, timeout: float = 10.0, retries: int = 3,
                 token_secret: Optional[Union[str, bytes]] = None, max_backoff: float = 10.0):
        self.url = url.rstrip("/")
        self.key = key
        self.timeout = timeout
        self.retries = retries
        self.token_secret = token_secret
        self.max_backoff = max_backoff

    # ---- publishing

    def publish(self, topic: Union[str, Iterable[str]], data: Data, event: Optional[str] = None,
                retain: bool = False, idempotency_key: Optional[str] = None) -> str:
        """Publishes one message and returns its id.

        topic is a topic or a list of topics. data is sent as text: a str as it is, bytes decoded
        as UTF-8, anything else as compact JSON. A repeated idempotency_key returns the first
        publish's id without publishing again.
        """
        msg = self._message(topic, data, event, retain, idempotency_key or str(uuid.uuid4()))
        return self._post(msg, None)["id"]

    def publish_batch(self, messages: Iterable[dict]) -> List[str]:
        """Publishes several messages in one request, all or none, and returns their ids in order.

        Each message is a dict with the arguments of publish(): topic, data, and optionally
        event, retain, idempotency_key.
        """
        msgs = [self._message(m["topic"], m.get("data"), m.get("event"), m.get("retain", False),
                              m.get("idempotency_key")) for m in messages]
        if not msgs:
            return []
        # The server derives "<key>/<index>" for each message without a key of its own.
        return self._post(msgs, {"Idempotency-Key": str(uuid.uuid4())})["ids"]

    @staticmethod
    def _message(topic, data, event, retain, idempotency_key) -> dict:
        if isinstance(data, bytes):
            data = data.decode("utf-8")
        msg = {"data": data}
        if isinstance(topic, str):
            msg["topic"] = topic
        else:
            msg["topics"] = list(topic)
        if event:
            msg["event"] = event
        if retain:
            msg["retain"] = True
        if idempotency_key:
            msg["idempotencyKey"] = idempotency_key
        return msg

    def _post(self, body, extra_headers) -> dict:
        payload = json.dumps(body, separators=(",", ":")).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.key:
            headers["Authorization"] = "Bearer " + self.key
        headers.update(extra_headers or {})
        attempt = 0
        while True:
            req = urllib.request.Request(self.url + "/publish", data=payload, headers=headers, method="POST")
            wait = None
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return json.loads(resp.read())
            except urllib.error.HTTPError as e:
                err = _http_error(e)
                if e.code < 500 and e.code not in (408, 429):
                    raise err from None
                wait = _retry_after(e.headers.get("Retry-After"))
            except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError) as e:
                reason = getattr(e, "reason", e)
                err = HeraldError(None, "unreachable", f"{self.url}: {reason}")
            if attempt >= self.retries:
                raise err
            # Full jitter: uniform in [0, min(cap, base * 2^attempt)), unless the server said when.
            time.sleep(wait if wait is not None else random.uniform(0, min(self.max_backoff, 0.2 * 2 ** attempt)))
            attempt += 1

    # ---- tokens for pages

    def subscriber_token(self, sub: str, subscribe: Iterable[str] = (), publish: Iterable[str] = (),
                         ttl: int = 3600, secret: Optional[Union[str, bytes]] = None) -> str:
        """Mints an HS256 JWT that lets a page subscribe to (and, if given, publish to) topics and
        patterns, for ttl seconds. Claims: {"sub", "exp", "herald": {"subscribe", "publish"}}.

        The secret is token_secret unless given here; the server must be configured with the same.
        """
        secret = secret if secret is not None else self.token_secret
        if not secret:
            raise ValueError("subscriber_token needs a secret: Herald(..., token_secret=...)")
        if isinstance(secret, str):
            secret = secret.encode("utf-8")
        claims = {"sub": sub, "exp": int(time.time()) + int(ttl),
                  "herald": {"subscribe": list(subscribe), "publish": list(publish)}}
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{header}.{body}".encode("ascii")
        sig = _b64(hmac.new(secret, signing_input, hashlib.sha256).digest())
        return f"{header}.{body}.{sig}"

    # ---- a small subscriber

    def subscribe(self, topics: Iterable[str], last_id: Optional[str] = None, token: Optional[str] = None,
                  timeout: Optional[float] = 60.0, reconnect: bool = True) -> Iterator[Union[Message, Gap]]:
        """Yields the messages of topics and patterns as they arrive, and Gap notices.

        Without last_id a new subscriber first receives each topic's retained value. A dropped
        connection is reopened from the last id seen (with reconnect=True), so nothing is missed.
        timeout bounds the wait for any byte; the server sends a heartbeat every 15s by default.
        A 4xx answer raises HeraldError.
        """
        query = urllib.parse.urlencode([("topic", t) for t in topics] + [("format", "envelope")])
        attempt, retry = 0, 1.0
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_id:
                headers["Last-Event-ID"] = last_id
            if token or self.key:
                headers["Authorization"] = "Bearer " + (token or self.key)
            req = urllib.request.Request(f"{self.url}/events?{query}", headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    for kind, value in _events(resp):
                        if kind == "id":
                            last_id = value
                        elif kind == "retry":
                            retry = value
                        else:
                            attempt = 0
                            if isinstance(value, Message) and value.id:
                                last_id = value.id
                            yield value
            except urllib.error.HTTPError as e:
                if e.code < 500 and e.code != 429:
                    raise _http_error(e) from None
            except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError):
                pass
            if not reconnect:
                return
            time.sleep(random.uniform(0, min(self.max_backoff, retry * 2 ** attempt)))
            attempt += 1


def _events(resp):
    """Parses an event stream as EventSource does. Yields ("id", id) for an id sent without data,
    ("retry", seconds), and ("event", Message or Gap)."""
    data, event, has_data, id_seen, last_id = [], "", False, False, ""
    for raw in resp:
        line = raw.decode("utf-8").rstrip("\r\n")
        if line == "":
            if has_data:
                yield "event", _decode(last_id, event, "\n".join(data))
            elif id_seen:
                yield "id", last_id
            data, event, has_data, id_seen = [], "", False, False
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
            has_data = True
        elif name == "event":
            event = value
        elif name == "id" and "\0" not in value:
            last_id, id_seen = value, True
        elif name == "retry" and value.isdigit():
            yield "retry", int(value) / 1000


def _decode(last_id, event, data):
    if event == "herald.gap":
        g = json.loads(data)
        return Gap(g.get("reason", ""), g.get("lastEventId", ""), g.get("message", ""))
    try:
        m = json.loads(data)
        return Message(id=m["id"], topic=m["topic"], data=m["data"], event=m.get("event"),
                       topics=m.get("topics") or [m["topic"]], time=m.get("time"))
    except (ValueError, KeyError, TypeError):
        return Message(id=last_id, topic="", data=data, event=None if event in ("", "message") else event)


def _http_error(e: urllib.error.HTTPError) -> HeraldError:
    text = e.read().decode("utf-8", "replace")
    try:
        body = json.loads(text)
        return HeraldError(e.code, body.get("error", ""), body.get("message", text))
    except ValueError:
        return HeraldError(e.code, "http", text.strip() or e.reason)


def _retry_after(value) -> Optional[float]:
    try:
        return min(float(value), 300.0) if value else None
    except ValueError:
        return None
