"""Drives every method of PyPI LayerClient 0.1.10 (platform-clients.md section 4.2) against a
running layer-server.

    LAYER_INTEROP_URL=http://127.0.0.1:PORT LAYER_APP_ID=<uuid> LAYER_TOKEN=<token> \
        .venv/bin/python layer_client.py

The client hard-codes https://api.layer.com; LocalPlatformClient overrides the one method that
builds URLs. Prints one line per check and a RESULT line; exits 1 on any failure.
LAYER_INTEROP_DEBUG=1 prints the raw requests (http.client debug output).
"""

import base64
import datetime
import http.client
import os
import re
import secrets
import sys

import requests
from LayerClient.LayerClient import (
    Announcement,
    Conversation,
    LayerMessageReceipt,
    LayerPlatformException,
    Message,
    MessagePart,
    PlatformClient,
    PushNotification,
    RichContent,
    Sender,
)

HERE = os.path.dirname(os.path.abspath(__file__))
LAYER_PREFIX = "https://api.layer.com"
UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


class LocalPlatformClient(PlatformClient):
    """PlatformClient whose URLs point at base_url instead of https://api.layer.com."""

    def __init__(self, base_url, app_uuid, bearer_token):
        super().__init__(app_uuid, bearer_token)
        self.base_url = base_url.rstrip("/")

    def _get_layer_uri(self, *suffixes):
        uri = super()._get_layer_uri(*suffixes)
        if not uri.startswith(LAYER_PREFIX + "/"):
            raise AssertionError("unexpected URL from LayerClient: " + uri)
        return self.base_url + uri[len(LAYER_PREFIX):]


def one_line(value, limit=400):
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[:limit] + "..."


def known_failures():
    path = os.environ.get("LAYER_INTEROP_KNOWN_FAILURES") or os.path.join(HERE, "known_failures.txt")
    with open(path, encoding="utf-8") as f:
        return {line.split("#", 1)[0].strip() for line in f} - {""}


class NotRun(Exception):
    pass


def need(value, what):
    if value is None:
        raise NotRun("not run: needs " + what)
    return value


class Report:
    """PASS/FAIL/XFAIL/XPASS lines and the RESULT line, like common.js."""

    def __init__(self, suite):
        self.suite = suite
        self.known = known_failures()
        self.counts = dict(passed=0, failed=0, xfail=0, xpass=0)
        self.seen = set()

    def check(self, name, fn):
        check_id = "%s/%s" % (self.suite, name)
        assert check_id not in self.seen, "duplicate check name " + check_id
        self.seen.add(check_id)
        try:
            fn()
            error = None
        except Exception as e:  # noqa: BLE001 - every failure is reported, none is fatal
            error = describe(e)
        known = check_id in self.known
        if error is None and not known:
            self.counts["passed"] += 1
            print("PASS  " + check_id, flush=True)
        elif error is None:
            self.counts["xpass"] += 1
            print("XPASS %s: passes now; remove it from tests/interop/known_failures.txt" % check_id, flush=True)
        elif known:
            self.counts["xfail"] += 1
            print("XFAIL %s: %s" % (check_id, one_line(error)), flush=True)
        else:
            self.counts["failed"] += 1
            print("FAIL  %s: %s" % (check_id, one_line(error)), flush=True)

    def finish(self):
        c = self.counts
        total = sum(c.values())
        print(
            "%s: %d/%d passed, %d failed, %d known failures (XFAIL), %d XPASS"
            % (self.suite, c["passed"], total, c["failed"], c["xfail"], c["xpass"])
        )
        print(
            "RESULT %s passed=%d failed=%d xfail=%d xpass=%d total=%d"
            % (self.suite, c["passed"], c["failed"], c["xfail"], c["xpass"], total)
        )
        return 1 if c["failed"] or c["xpass"] else 0


def describe(e):
    if isinstance(e, LayerPlatformException):
        return "LayerPlatformException(http_code=%r, error_id=%r, code=%r, message=%r)" % (
            e.http_code,
            e.error_id,
            e.code,
            str(e),
        )
    if isinstance(e, (AssertionError, NotRun)):
        return str(e)
    return "%s: %s" % (type(e).__name__, e)


def eq(actual, expected, what):
    if actual != expected:
        raise AssertionError("%s: expected %r, got %r" % (what, expected, actual))


def ok(cond, what, value=None):
    if not cond:
        raise AssertionError(what if value is None else "%s; got %r" % (what, value))


def no_content(result):
    """Methods that return `result.json()` or, for an empty body, the Response itself."""
    ok(isinstance(result, requests.Response), "expected a body-less answer (Response object)", result)
    eq(result.status_code, 204, "status")


def raises(status, fn, error_id=None, code=None):
    try:
        fn()
    except LayerPlatformException as e:
        eq(e.http_code, status, "http_code")
        if error_id is not None:
            eq(e.error_id, error_id, "error_id")
        if code is not None:
            eq(e.code, code, "code")
        return e
    raise AssertionError("expected LayerPlatformException %d, the call succeeded" % status)


def conversation(conv):
    ok(isinstance(conv, Conversation), "a Conversation", conv)
    ok(re.fullmatch("layer:///conversations/" + UUID, conv.id or ""), "id is layer:///conversations/<uuid>", conv.id)
    eq(conv.uuid(), conv.id.rsplit("/", 1)[1], "uuid()")
    ok(conv.messages_url, "messages_url present")
    ok(isinstance(conv.created_at, datetime.datetime), "created_at parsed", conv.created_at)


def message(msg, conv):
    ok(isinstance(msg, Message), "a Message", msg)
    ok(re.fullmatch("layer:///messages/" + UUID, msg.id or ""), "id is layer:///messages/<uuid>", msg.id)
    ok(msg.uuid() is not None, "uuid()")
    ok(isinstance(msg.conversation, Conversation), "conversation built", msg.conversation)
    eq(msg.conversation.id, conv.id, "conversation.id")
    ok(isinstance(msg.sent_at, datetime.datetime), "sent_at parsed", msg.sent_at)
    ok(isinstance(msg.sender, Sender), "sender built", msg.sender)


def main():
    missing = [k for k in ("LAYER_INTEROP_URL", "LAYER_APP_ID", "LAYER_TOKEN") if not os.environ.get(k)]
    if missing:
        print("missing environment: " + ", ".join(missing) + " (see tests/interop/README.md)", file=sys.stderr)
        return 2
    if os.environ.get("LAYER_INTEROP_DEBUG") == "1":
        http.client.HTTPConnection.debuglevel = 1

    base = os.environ["LAYER_INTEROP_URL"]
    client = LocalPlatformClient(base, os.environ["LAYER_APP_ID"], os.environ["LAYER_TOKEN"])
    report = Report("LayerClient")
    check = report.check
    tag = secrets.token_hex(4)
    alice, bob, carol = ("%s-%s" % (n, tag) for n in ("py-alice", "py-bob", "py-carol"))
    print("LayerClient 0.1.10 against %s (app %s, run %s)" % (base, client.app_uuid, tag), flush=True)
    s = {}  # what earlier checks produced

    # Identities: python has no create method; PUT on an unknown user creates the identity.
    def replace_identity():
        no_content(
            client.replace_identity(
                Sender(
                    id=alice,
                    display_name="Alice",
                    first_name="Alice",
                    last_name="Liddell",
                    email_address="alice@example.com",
                    metadata={"team": "blue"},
                )
            )
        )
        s["identity"] = True

    check("replace_identity (PUT, unknown user) -> 204, creates it", replace_identity)

    def get_identity():
        need(s.get("identity"), "replace_identity")
        sender = client.get_identity(alice)
        ok(isinstance(sender, Sender), "a Sender", sender)
        eq(sender.id, alice, "Sender.id (from user_id)")
        eq(
            (sender.display_name, sender.first_name, sender.last_name, sender.email_address, sender.metadata),
            ("Alice", "Alice", "Liddell", "alice@example.com", {"team": "blue"}),
            "profile fields",
        )

    check("get_identity -> Sender with user_id and the stored fields", get_identity)
    check(
        "get_identity unknown user -> LayerPlatformException 404",
        lambda: raises(404, lambda: client.get_identity("nobody-" + tag)),
    )

    # Conversations
    def create_conversation():
        conv = client.create_conversation([alice, bob])  # distinct=True, "metadata": null
        conversation(conv)
        eq(conv.participants, [alice, bob], "participants")
        eq(conv.distinct, True, "distinct")
        s["conv"] = conv

    check("create_conversation (distinct default, metadata null) -> Conversation", create_conversation)

    def create_existing_distinct():
        conv = need(s.get("conv"), "create_conversation")
        again = client.create_conversation([alice, bob])
        conversation(again)
        eq(again.id, conv.id, "id of the existing distinct conversation")

    check("create_conversation existing distinct -> the same Conversation", create_existing_distinct)

    def create_with_metadata():
        conv = client.create_conversation([alice, carol], distinct=False, metadata={"title": "Py"})
        conversation(conv)
        eq((conv.distinct, conv.metadata), (False, {"title": "Py"}), "(distinct, metadata)")
        s["conv2"] = conv

    check("create_conversation distinct=False with metadata -> Conversation", create_with_metadata)

    def get_conversation():
        conv = need(s.get("conv"), "create_conversation")
        got = client.get_conversation(conv.uuid())
        conversation(got)
        eq((got.id, got.participants), (conv.id, [alice, bob]), "(id, participants)")

    check("get_conversation -> Conversation", get_conversation)
    check(
        "get_conversation unknown -> LayerPlatformException 404 not_found/102",
        lambda: raises(
            404, lambda: client.get_conversation("24f43c32-4d95-11e4-b3a2-0fd00000020d"), "not_found", 102
        ),
    )

    def get_conversations():
        conv = need(s.get("conv"), "create_conversation")
        conv2 = need(s.get("conv2"), "create_conversation with metadata")
        convs = client.get_conversations(alice, page_size=10, sort_by="created_at")
        ok(isinstance(convs, list), "a list", convs)
        for c in convs:
            conversation(c)
        eq(sorted(c.id for c in convs), sorted([conv.id, conv2.id]), "conversation ids")
        newest_first = client.get_conversations(alice, page_size=1, sort_by="created_at")
        eq([c.id for c in newest_first], [conv2.id], "page_size=1, newest first")
        older = client.get_conversations(alice, from_id=conv2.id)
        eq([c.id for c in older], [conv.id], "from_id=<newest> gives the older one")

    check("get_conversations page_size/sort_by/from_id -> [Conversation]", get_conversations)

    def update_metadata():
        conv2 = need(s.get("conv2"), "create_conversation with metadata")
        no_content(client.update_conversation(conv2, metadata={"title": "New", "x": {"y": "z"}}))
        eq(client.get_conversation(conv2.uuid()).metadata, {"title": "New", "x": {"y": "z"}}, "metadata")

    check("update_conversation(metadata) -> 204, whole metadata replaced", update_metadata)

    def update_custom():
        conv2 = need(s.get("conv2"), "create_conversation with metadata")
        ops = [{"operation": "add", "property": "participants", "value": bob}]
        no_content(client.update_conversation(conv2.uuid(), custom_operations=ops))
        eq(client.get_conversation(conv2.uuid()).participants, [alice, carol, bob], "participants")

    check("update_conversation(custom_operations) -> 204", update_custom)

    # Messages
    def send_message_user():
        conv = need(s.get("conv"), "create_conversation")
        raw = base64.b64encode(bytes([0, 1, 2, 250])).decode()
        msg = client.send_message(
            conv,
            Sender(id=alice, display_name="Alice"),  # display_name rides along with user_id
            [MessagePart("hello from python"), MessagePart(raw, mime="application/octet-stream", encoding="base64")],
            PushNotification("New message", sound="chime.aiff", recipients={bob: PushNotification("For bob")}),
        )
        message(msg, conv)
        eq((msg.sender.id, msg.sender.name), (alice, None), "sender (id, name)")
        eq(
            [(p.body, p.mime_type, p.encoding) for p in msg.parts],
            [("hello from python", "text/plain", None), (raw, "application/octet-stream", "base64")],
            "parts",
        )
        s["msg"] = msg

    check("send_message (Sender id, notification recipients map) -> Message", send_message_user)

    def send_message_name():
        conv = need(s.get("conv"), "create_conversation")
        msg = client.send_message(conv, Sender(name="Py Bot"), [MessagePart("hello from a bot")])
        message(msg, conv)
        eq((msg.sender.id, msg.sender.name), (None, "Py Bot"), "sender (id, name)")
        s["msg2"] = msg

    check("send_message (Sender name) -> Message", send_message_name)

    def get_messages():
        conv = need(s.get("conv"), "create_conversation")
        msgs = client.get_messages(conv.uuid())
        ok(isinstance(msgs, list), "a list", msgs)
        for m in msgs:
            message(m, conv)
        sent = [need(s.get(k), "both send_message checks").id for k in ("msg", "msg2")]
        eq(sorted(m.id for m in msgs), sorted(sent), "message ids")
        eq(len(client.get_messages(conv.uuid(), page_size=1)), 1, "page_size=1 count")
        older = client.get_messages(conv.uuid(), from_id=s["msg2"].id)
        eq([m.id for m in older], [s["msg"].id], "from_id=<newest> gives the older one")

    check("get_messages page_size/from_id -> [Message]", get_messages)

    def receipt(kind):
        def run():
            msg = need(s.get("msg"), "send_message")
            no_content(client.send_message_receipt(bob, msg.uuid(), kind))

        return run

    check("send_message_receipt read -> 204", receipt(LayerMessageReceipt.READ))
    check("send_message_receipt delivery (after read) -> 204", receipt(LayerMessageReceipt.DELIVERY))
    check(
        "update_user_external_badge_count -> 204",
        lambda: no_content(client.update_user_external_badge_count(alice, 3)),
    )

    def rich_content():
        conv = need(s.get("conv"), "create_conversation")
        # The size must be a string: requests refuses int header values (platform-clients.md 4.2).
        rc = client.prepare_rich_content(conv, "text/plain", "4096")
        ok(isinstance(rc, RichContent), "a RichContent", rc)
        ok(re.fullmatch("layer:///content/" + UUID, rc.id or ""), "id is layer:///content/<uuid>", rc.id)
        eq(rc.size, 4096, "size")
        ok(rc.upload_url, "upload_url present", rc.upload_url)

    check("prepare_rich_content -> 201 RichContent", rich_content)

    def announcement():
        ann = client.send_announcement(Sender(name="The System"), [alice, bob], [MessagePart("Hello, everyone")])
        ok(isinstance(ann, Announcement), "an Announcement", ann)
        ok(re.fullmatch("layer:///announcements/" + UUID, ann.id or ""), "id is layer:///announcements/<uuid>", ann.id)
        ok(ann.uuid() is not None, "uuid()")
        ok(isinstance(ann.sent_at, datetime.datetime), "sent_at parsed", ann.sent_at)
        eq((ann.sender.name, ann.sender.id), ("The System", None), "sender (name, id)")
        eq(ann.recipients, [alice, bob], "recipients")
        eq([p.body for p in ann.parts], ["Hello, everyone"], "parts")

    check("send_announcement -> Announcement", announcement)

    def delete_message():
        conv = need(s.get("conv"), "create_conversation")
        msg2 = need(s.get("msg2"), "send_message (Sender name)")
        eq(client.delete_message(conv.uuid(), msg2.uuid()), None, "return value")
        ok(msg2.id not in [m.id for m in client.get_messages(conv.uuid())], "message gone from get_messages")

    check("delete_message -> gone from get_messages", delete_message)

    def delete_conversation():
        conv2 = need(s.get("conv2"), "create_conversation with metadata")
        eq(client.delete_conversation(conv2.uuid()), None, "return value")
        raises(410, lambda: client.get_conversation(conv2.uuid()))

    check("delete_conversation -> then get_conversation 410", delete_conversation)

    return report.finish()


if __name__ == "__main__":
    sys.exit(main())
