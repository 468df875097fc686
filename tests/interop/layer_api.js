'use strict';
// Drives every method of the published `layer-api` 2.3.3 client (platform-clients.md §4.1) against
// a running layer-server and checks what the spec says the client and its users rely on.
// Pass 1 uses the client's default version (Accept: version=1.0); pass 2 repeats the
// conversation and identity methods with `version: '3.0'` and checks the v3 shapes.
//
//   LAYER_INTEROP_URL=http://127.0.0.1:PORT LAYER_APP_ID=<uuid> LAYER_TOKEN=<token> node layer_api.js
//
// Prints one line per check and a RESULT line; exits 1 on any failure.

const assert = require('node:assert');
const crypto = require('node:crypto');
const LayerAPI = require('layer-api');
const { config, RedirectAgent, runner, need, oneLine } = require('./common');

const cfg = config();
const agent = new RedirectAgent(cfg);
const client = (options) =>
  new LayerAPI({ token: cfg.token, appId: cfg.appId, agent, ...options });
const v1 = client({});
const v3 = client({ version: '3.0' });
const { check, report } = runner('layer-api');

// Unique per run, so the suite can be re-run against the same app.
const tag = crypto.randomBytes(4).toString('hex');
const user = (name) => `${name}-${tag}`;

// ---------------------------------------------------------------------------------------------
// Helpers

/** Awaits a layer-api promise; resolves to {status, body} for any HTTP answer (errors included). */
async function call(promise) {
  try {
    const res = await promise;
    return { status: res.status, body: res.body };
  } catch (err) {
    if (err && typeof err.status === 'number') return { status: err.status, body: err.body };
    throw err;
  }
}

function status(r, expected) {
  const ok = typeof expected === 'function' ? expected(r.status) : r.status === expected;
  if (!ok) {
    const want = typeof expected === 'function' ? expected.description : expected;
    throw new Error(`expected status ${want}, got ${r.status} ${oneLine(r.body, 300)}`);
  }
}
const success = Object.assign((s) => s >= 200 && s < 300, { description: '2xx' });

function eq(actual, expected, what) {
  try {
    assert.deepStrictEqual(actual, expected);
  } catch {
    throw new Error(`${what}: expected ${oneLine(expected)}, got ${oneLine(actual)}`);
  }
}

function ok(cond, what, value) {
  if (!cond) throw new Error(`${what}${value === undefined ? '' : `; got ${oneLine(value)}`}`);
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const layerId = (type) => new RegExp(`^layer:///${type}/${UUID}$`, 'i');

function isoDate(value, what) {
  ok(
    typeof value === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d/.test(value) && !isNaN(Date.parse(value)),
    `${what} is an ISO-8601 date`,
    value,
  );
}

/** An error answer: the status, a JSON object body, and the given properties (deep). */
function error(r, expectedStatus, props = {}) {
  status(r, expectedStatus);
  ok(isObject(r.body), 'error body is a JSON object', r.body);
  for (const [key, value] of Object.entries(props)) eq(r.body[key], value, `error ${key}`);
}

/** 204 with an empty body (the integration specs compare the body with ''). */
function noContent(r) {
  status(r, 204);
  eq(r.body, '', '204 body');
}

function conversation(body, version) {
  ok(isObject(body), 'body is a Conversation object', body);
  ok(layerId('conversations').test(body.id), 'id is layer:///conversations/<uuid>', body.id);
  ok(typeof body.url === 'string' && body.url.length > 0, 'url present', body.url);
  ok(typeof body.messages_url === 'string' && body.messages_url.length > 0, 'messages_url present', body.messages_url);
  isoDate(body.created_at, 'created_at');
  ok(Array.isArray(body.participants), 'participants is an array', body.participants);
  ok(typeof body.distinct === 'boolean', 'distinct is a boolean', body.distinct);
  if (version === 3) body.participants.forEach(basicIdentity);
  else ok(body.participants.every((p) => typeof p === 'string'), 'v1 participants are user id strings', body.participants);
}

/** v3 BasicIdentity: exactly {id, url, user_id, display_name, avatar_url}. */
function basicIdentity(p) {
  ok(isObject(p), 'participant is a BasicIdentity object', p);
  eq(Object.keys(p).sort(), ['avatar_url', 'display_name', 'id', 'url', 'user_id'], 'BasicIdentity keys');
  eq(p.id, `layer:///identities/${encodeURIComponent(p.user_id)}`, 'BasicIdentity id');
  ok(typeof p.url === 'string' && p.url.length > 0, 'BasicIdentity url present', p.url);
}

const userIds = (participants) => participants.map((p) => (isObject(p) ? p.user_id : p));

function message(body, conversationId) {
  ok(isObject(body), 'body is a Message object', body);
  ok(layerId('messages').test(body.id), 'id is layer:///messages/<uuid>', body.id);
  ok(typeof body.url === 'string' && body.url.length > 0, 'url present', body.url);
  ok(isObject(body.conversation), 'conversation is an object', body.conversation);
  eq(body.conversation.id, conversationId, 'conversation.id');
  ok(typeof body.conversation.url === 'string' && body.conversation.url.length > 0, 'conversation.url present');
  isoDate(body.sent_at, 'sent_at');
  ok(isObject(body.sender), 'sender is an object', body.sender);
  ok(Array.isArray(body.parts), 'parts is an array', body.parts);
}

/** should.match-like: every key of `expected` equals the same key of `actual`. */
function matches(actual, expected, what) {
  ok(isObject(actual), `${what} is an object`, actual);
  for (const [key, value] of Object.entries(expected)) eq(actual[key], value, `${what}.${key}`);
}

function parts(actual, expected) {
  ok(Array.isArray(actual) && actual.length === expected.length, `${expected.length} parts`, actual);
  expected.forEach((part, i) => matches(actual[i], part, `parts[${i}]`));
}

// ---------------------------------------------------------------------------------------------
// Pass 1: API version 1.0 (the client's default)

async function identitiesV1() {
  const uid = user('ident');
  const props = {
    display_name: 'John Doe',
    avatar_url: 'https://example.com/avatar.png',
    first_name: 'John',
    last_name: 'Doe',
    phone_number: '415-555-0202',
    email_address: 'john@example.com',
    public_key: '<RSA Key>',
    metadata: { key: 'value' },
  };
  let created;
  await check('v1.0 identities.create -> 201, empty body', async () => {
    const r = await call(v1.identities.createAsync(uid, props));
    status(r, 201);
    eq(r.body, '', 'body');
    created = true;
  });
  await check('v1.0 identities.create again -> 409', async () => {
    need(created, 'identities.create');
    error(await call(v1.identities.createAsync(uid, props)), 409);
  });
  await check('v1.0 identities.get -> 200, every field as stored, user_id', async () => {
    need(created, 'identities.create');
    const r = await call(v1.identities.getAsync(uid));
    status(r, 200);
    matches(r.body, props, 'identity');
    eq(r.body.user_id, uid, 'user_id (python builds its Sender from it)');
  });
  await check('v1.0 identities.get unknown user -> 404', async () => {
    error(await call(v1.identities.getAsync(user('nobody'))), 404);
  });
  await check('v1.0 identities.edit -> 204, GET reflects it', async () => {
    need(created, 'identities.create');
    noContent(await call(v1.identities.editAsync(uid, { email_address: 'john@doe.com', last_name: 'Dodo' })));
    const r = await call(v1.identities.getAsync(uid));
    status(r, 200);
    matches(r.body, { email_address: 'john@doe.com', last_name: 'Dodo', first_name: 'John' }, 'identity');
  });
  await check('v1.0 identities.edit metadata.<key> -> 204, GET reflects it', async () => {
    need(created, 'identities.create');
    noContent(await call(v1.identities.editAsync(uid, { 'metadata.level': '2' })));
    const r = await call(v1.identities.getAsync(uid));
    status(r, 200);
    eq(r.body.metadata, { key: 'value', level: '2' }, 'metadata');
  });
  await check('v1.0 identities.replace -> 204, GET has only the new fields', async () => {
    need(created, 'identities.create');
    const replacement = { display_name: 'John Doe 2', first_name: 'Johnny', last_name: 'Doey' };
    noContent(await call(v1.identities.replaceAsync(uid, replacement)));
    const r = await call(v1.identities.getAsync(uid));
    status(r, 200);
    matches(r.body, replacement, 'identity');
    ok(r.body.email_address == null, 'email_address cleared by the replace', r.body.email_address);
  });
  await check('v1.0 identities.replace unknown user -> 204 (creates it)', async () => {
    const other = user('upserted');
    noContent(await call(v1.identities.replaceAsync(other, { display_name: 'Upserted' })));
    const r = await call(v1.identities.getAsync(other));
    status(r, 200);
    eq(r.body.display_name, 'Upserted', 'display_name');
  });
  await check('v1.0 identities.delete -> 204, then GET -> 404', async () => {
    need(created, 'identities.create');
    noContent(await call(v1.identities.deleteAsync(uid)));
    error(await call(v1.identities.getAsync(uid)), 404);
  });
}

async function conversationsV1() {
  const [alice, bob, carol, dave, erin] = ['alice', 'bob', 'carol', 'dave', 'erin'].map(user);
  const odd = `ns/odd user#${tag}`; // escaped by getFromUser/getAllFromUser: ns%2Fodd%20user%23...
  const metadata = { info: { title: 'Interop', color: 'blue' } };
  let conv;

  await check('v1.0 conversations.create -> 201 Conversation, participants in order', async () => {
    const r = await call(v1.conversations.createAsync({ participants: [alice, bob, odd], distinct: false, metadata }));
    status(r, 201);
    conversation(r.body, 1);
    eq(r.body.participants, [alice, bob, odd], 'participants');
    eq(r.body.distinct, false, 'distinct');
    eq(r.body.metadata, metadata, 'metadata');
    conv = r.body;
  });
  await check('v1.0 conversations.create {} -> 422 missing_property participants', async () => {
    error(await call(v1.conversations.createAsync({})), 422, {
      id: 'missing_property',
      code: 104,
      data: { property: 'participants' },
    });
  });
  let distinct;
  await check('v1.0 conversations.create distinct twice -> 201, then 200 with the same conversation', async () => {
    const body = { participants: [carol, dave], distinct: true, metadata: { topic: 'x' } };
    const first = await call(v1.conversations.createAsync(body));
    status(first, 201);
    conversation(first.body, 1);
    eq(first.body.distinct, true, 'distinct');
    distinct = first.body;
    const again = await call(v1.conversations.createAsync({ participants: [carol, dave], distinct: true }));
    status(again, 200);
    eq(again.body.id, first.body.id, 'id of the existing distinct conversation');
  });
  await check('v1.0 conversations.create distinct, other metadata -> 409 conflict with the conversation', async () => {
    need(distinct, 'a distinct conversation');
    const r = await call(
      v1.conversations.createAsync({ participants: [carol, dave], distinct: true, metadata: { topic: 'y' } }),
    );
    error(r, 409, { id: 'conflict', code: 108 });
    ok(isObject(r.body.data) && r.body.data.id === distinct.id, 'data is the existing conversation', r.body.data);
  });
  await check('v1.0 conversations.createDedupe twice -> 201, then the same conversation', async () => {
    const tagUuid = crypto.randomUUID();
    const body = { participants: [alice, erin], distinct: false };
    const first = await call(v1.conversations.createDedupeAsync(tagUuid, body));
    status(first, 201);
    conversation(first.body, 1);
    const again = await call(v1.conversations.createDedupeAsync(tagUuid, body));
    status(again, success);
    eq(again.body.id, first.body.id, 'id of the replayed create');
  });
  await check('v1.0 conversations.get (layer:/// id) -> 200, same conversation', async () => {
    need(conv, 'conversations.create');
    const r = await call(v1.conversations.getAsync(conv.id));
    status(r, 200);
    conversation(r.body, 1);
    eq(r.body.id, conv.id, 'id');
    eq(r.body.participants, [alice, bob, odd], 'participants');
    eq(r.body.metadata, metadata, 'metadata');
  });
  await check('v1.0 conversations.get unknown -> 404 not_found', async () => {
    error(await call(v1.conversations.getAsync('24f43c32-4d95-11e4-b3a2-0fd00000020d')), 404, {
      id: 'not_found',
      code: 102,
    });
  });
  await check('v1.0 conversations.getFromUser -> 200, user view', async () => {
    need(conv, 'conversations.create');
    const r = await call(v1.conversations.getFromUserAsync(alice, conv.id));
    status(r, 200);
    conversation(r.body, 1);
    eq(r.body.id, conv.id, 'id');
    ok('last_message' in r.body, 'user view has last_message', Object.keys(r.body));
    ok(typeof r.body.unread_message_count === 'number', 'user view has unread_message_count', r.body.unread_message_count);
  });
  await check('v1.0 conversations.getFromUser percent-encoded user id (ns%2Fodd%20user%23..)', async () => {
    need(conv, 'conversations.create');
    const r = await call(v1.conversations.getFromUserAsync(odd, conv.id));
    status(r, 200);
    eq(r.body.id, conv.id, 'id');
  });
  await check('v1.0 conversations.getAllFromUser -> 200, array with the conversation', async () => {
    need(conv, 'conversations.create');
    const r = await call(v1.conversations.getAllFromUserAsync(alice));
    status(r, 200);
    ok(Array.isArray(r.body), 'body is an array', r.body);
    r.body.forEach((c) => conversation(c, 1));
    ok(r.body.some((c) => c.id === conv.id), 'contains the conversation', r.body.map((c) => c.id));
  });
  await check('v1.0 conversations.getAllFromUser page_size/sort_by/from_id -> 200', async () => {
    need(conv, 'conversations.create');
    const first = await call(v1.conversations.getAllFromUserAsync(alice, { page_size: 1, sort_by: 'created_at' }));
    status(first, 200);
    ok(Array.isArray(first.body) && first.body.length === 1, 'one conversation with page_size=1', first.body);
    const next = await call(
      v1.conversations.getAllFromUserAsync(alice, { page_size: 50, sort_by: 'last_message', from_id: first.body[0].id }),
    );
    status(next, 200);
    ok(Array.isArray(next.body), 'body is an array', next.body);
    ok(!next.body.some((c) => c.id === first.body[0].id), 'from_id is excluded', next.body.map((c) => c.id));
  });
  await check('v1.0 conversations.getAllFromUser unknown user -> 200 []', async () => {
    const r = await call(v1.conversations.getAllFromUserAsync(user('stranger')));
    status(r, 200);
    eq(r.body, [], 'body');
  });

  const participantsNow = async (expected) => {
    const r = await call(v1.conversations.getAsync(conv.id));
    status(r, 200);
    eq(r.body.participants, expected, 'participants after the change');
    return r.body;
  };
  await check('v1.0 conversations.edit add/remove/set participants -> 204, GET reflects it', async () => {
    need(conv, 'conversations.create');
    noContent(
      await call(
        v1.conversations.editAsync(conv.id, [
          { operation: 'add', property: 'participants', value: 'user1' },
          { operation: 'remove', property: 'participants', value: 'user1' },
          { operation: 'set', property: 'participants', value: [alice, bob, carol] },
        ]),
      ),
    );
    await participantsNow([alice, bob, carol]);
  });
  await check('v1.0 conversations.setMetadataProperties -> 204, values as strings, dot paths', async () => {
    need(conv, 'conversations.create');
    noContent(
      await call(v1.conversations.setMetadataPropertiesAsync(conv.id, { foo: 'bar', number: 123, 'info.title': 'Renamed' })),
    );
    const r = await call(v1.conversations.getAsync(conv.id));
    status(r, 200);
    eq(r.body.metadata, { info: { title: 'Renamed', color: 'blue' }, foo: 'bar', number: '123' }, 'metadata');
  });
  await check('v1.0 conversations.deleteMetadataProperties -> 204, GET reflects it', async () => {
    need(conv, 'conversations.create');
    noContent(await call(v1.conversations.deleteMetadataPropertiesAsync(conv.id, { foo: true, 'info.color': true })));
    const r = await call(v1.conversations.getAsync(conv.id));
    status(r, 200);
    eq(r.body.metadata, { info: { title: 'Renamed' }, number: '123' }, 'metadata');
  });
  await check('v1.0 conversations.addParticipants -> 204, appended in order', async () => {
    need(conv, 'conversations.create');
    noContent(await call(v1.conversations.addParticipantsAsync(conv.id, [dave, erin])));
    await participantsNow([alice, bob, carol, dave, erin]);
  });
  await check('v1.0 conversations.removeParticipants -> 204', async () => {
    need(conv, 'conversations.create');
    noContent(await call(v1.conversations.removeParticipantsAsync(conv.id, [bob])));
    await participantsNow([alice, carol, dave, erin]);
  });
  await check('v1.0 conversations.replaceParticipants -> 204', async () => {
    need(conv, 'conversations.create');
    noContent(await call(v1.conversations.replaceParticipantsAsync(conv.id, [erin, alice])));
    await participantsNow([erin, alice]);
  });
  let deleted;
  await check('v1.0 conversations.delete -> 204, empty body', async () => {
    need(conv, 'conversations.create');
    noContent(await call(v1.conversations.deleteAsync(conv.id)));
    deleted = true;
  });
  await check('v1.0 deleted conversation: GET -> 410, DELETE again -> 204', async () => {
    need(deleted, 'conversations.delete');
    error(await call(v1.conversations.getAsync(conv.id)), 410);
    noContent(await call(v1.conversations.deleteAsync(conv.id)));
  });
}

async function messagesV1() {
  const [alice, bob] = ['m-alice', 'm-bob'].map(user);
  let conv;
  let setupError;
  try {
    const r = await call(v1.conversations.createAsync({ participants: [alice, bob], distinct: false }));
    status(r, 201);
    conv = r.body;
  } catch (err) {
    setupError = err.message;
  }
  const needConv = () => need(conv, `a conversation (conversations.create failed: ${setupError})`);

  const body = {
    sender: { name: 'Interop Bot' },
    parts: [
      { body: 'Hello, World!', mime_type: 'text/plain' },
      { body: Buffer.from([0, 1, 2, 250]).toString('base64'), mime_type: 'application/octet-stream', encoding: 'base64' },
    ],
    notification: { text: 'Hello', sound: 'chime.aiff' },
  };
  const sent = [];
  let byName;

  await check('v1.0 messages.send -> 201 Message', async () => {
    needConv();
    const r = await call(v1.messages.sendAsync(conv.id, body));
    status(r, 201);
    message(r.body, conv.id);
    matches(r.body.sender, body.sender, 'sender');
    ok(r.body.sender.user_id == null, 'a named sender has user_id null', r.body.sender);
    parts(r.body.parts, body.parts);
    ok(isObject(r.body.recipient_status), 'recipient_status is an object', r.body.recipient_status);
    ok(alice in r.body.recipient_status && bob in r.body.recipient_status, 'recipient_status keyed by participant user ids', r.body.recipient_status);
    sent.push(r.body.id);
    byName = r.body.id;
  });
  await check('v1.0 messages.send {} -> 422 missing_property', async () => {
    needConv();
    error(await call(v1.messages.sendAsync(conv.id, {})), 422, { id: 'missing_property', code: 104 });
  });
  await check('v1.0 messages.send to an unknown conversation -> 404 not_found', async () => {
    error(await call(v1.messages.sendAsync('24f43c32-4d95-11e4-b3a2-0fd00000020d', body)), 404, {
      id: 'not_found',
      code: 102,
    });
  });
  await check('v1.0 messages.sendDedupe twice -> 201, then the same message', async () => {
    needConv();
    const tagUuid = crypto.randomUUID();
    const msg = { sender: { user_id: alice }, parts: [{ body: 'once', mime_type: 'text/plain' }] };
    const first = await call(v1.messages.sendDedupeAsync(tagUuid, conv.id, msg));
    status(first, 201);
    message(first.body, conv.id);
    sent.push(first.body.id);
    const again = await call(v1.messages.sendDedupeAsync(tagUuid, conv.id, msg));
    status(again, success);
    eq(again.body.id, first.body.id, 'id of the replayed send');
  });
  let fromUser;
  await check('v1.0 messages.sendTextFromUser -> 201, sender.user_id', async () => {
    needConv();
    const r = await call(v1.messages.sendTextFromUserAsync(conv.id, alice, 'hello from alice'));
    status(r, 201);
    message(r.body, conv.id);
    eq(r.body.sender.user_id, alice, 'sender.user_id');
    parts(r.body.parts, [{ body: 'hello from alice', mime_type: 'text/plain' }]);
    sent.push(r.body.id);
    fromUser = r.body.id;
  });
  await check('v1.0 messages.sendTextFromName -> 201, sender {name, user_id: null}', async () => {
    needConv();
    const r = await call(v1.messages.sendTextFromNameAsync(conv.id, 'System', 'hello from the system'));
    status(r, 201);
    message(r.body, conv.id);
    eq(r.body.sender.name, 'System', 'sender.name');
    ok(r.body.sender.user_id == null, 'sender.user_id is null', r.body.sender);
    sent.push(r.body.id);
  });
  await check('v1.0 messages.getAll -> 200, every message sent', async () => {
    needConv();
    const r = await call(v1.messages.getAllAsync(conv.id));
    status(r, 200);
    ok(Array.isArray(r.body), 'body is an array', r.body);
    r.body.forEach((m) => message(m, conv.id));
    eq(r.body.map((m) => m.id).sort(), [...sent].sort(), 'message ids');
  });
  await check('v1.0 messages.getAll page_size=2 -> 200, 2 messages', async () => {
    needConv();
    const r = await call(v1.messages.getAllAsync(conv.id, { page_size: 2 }));
    status(r, 200);
    ok(Array.isArray(r.body) && r.body.length === 2, '2 messages', r.body);
  });
  await check('v1.0 messages.get -> 200, same message', async () => {
    need(fromUser, 'messages.sendTextFromUser');
    const r = await call(v1.messages.getAsync(fromUser, conv.id));
    status(r, 200);
    message(r.body, conv.id);
    eq(r.body.id, fromUser, 'id');
    eq(r.body.sender.user_id, alice, 'sender.user_id');
  });
  await check('v1.0 messages.get malformed id (path segment "null") -> 404', async () => {
    needConv();
    error(await call(v1.messages.getAsync('not-a-uuid', conv.id)), 404);
  });
  await check('v1.0 messages.getAllFromUser -> 200, user view', async () => {
    needConv();
    const r = await call(v1.messages.getAllFromUserAsync(bob, conv.id));
    status(r, 200);
    ok(Array.isArray(r.body), 'body is an array', r.body);
    r.body.forEach((m) => message(m, conv.id));
    eq(r.body.map((m) => m.id).sort(), [...sent].sort(), 'message ids');
    ok(r.body.every((m) => typeof m.is_unread === 'boolean'), 'user view has is_unread', r.body.map((m) => m.is_unread));
  });
  await check('v1.0 messages.getFromUser -> 200, same message', async () => {
    need(byName, 'messages.send');
    const r = await call(v1.messages.getFromUserAsync(bob, byName));
    status(r, 200);
    message(r.body, conv.id);
    eq(r.body.id, byName, 'id');
  });
}

async function announcementsV1() {
  const recipients = ['an-alice', 'an-bob'].map(user);
  const body = {
    recipients,
    sender: { name: 'The System' },
    parts: [{ body: 'Hello, World!', mime_type: 'text/plain' }],
  };
  const announcement = (r) => {
    status(r, 202);
    ok(isObject(r.body), 'body is an Announcement object', r.body);
    ok(layerId('announcements').test(r.body.id), 'id is layer:///announcements/<uuid>', r.body.id);
    ok(typeof r.body.url === 'string' && r.body.url.length > 0, 'url present', r.body.url);
    isoDate(r.body.sent_at, 'sent_at');
    eq(r.body.recipients, recipients, 'recipients');
    matches(r.body.sender, body.sender, 'sender');
    parts(r.body.parts, body.parts);
  };
  await check('v1.0 announcements.send -> 202 Announcement', async () => {
    announcement(await call(v1.announcements.sendAsync(body)));
  });
  await check('v1.0 announcements.sendDedupe twice -> 202, then the same announcement', async () => {
    const tagUuid = crypto.randomUUID();
    const first = await call(v1.announcements.sendDedupeAsync(tagUuid, body));
    announcement(first);
    const again = await call(v1.announcements.sendDedupeAsync(tagUuid, body));
    status(again, success);
    eq(again.body.id, first.body.id, 'id of the replayed send');
  });
}

async function blocklistV1() {
  // Both ids need percent-encoding; the client escapes them (querystring.escape).
  const owner = `ns/owner ${tag}&x`;
  const blocked = `blk#${tag}?`;
  const blockIds = async () => {
    const r = await call(v1.blocklist.getAsync(owner));
    status(r, 200);
    ok(Array.isArray(r.body), 'body is an array', r.body);
    r.body.forEach((b) => ok(isObject(b) && typeof b.user_id === 'string', 'entries are {user_id}', b));
    return r.body.map((b) => b.user_id);
  };
  let didBlock;
  await check('v1.0 blocklist.block -> 204', async () => {
    noContent(await call(v1.blocklist.blockAsync(owner, blocked)));
    didBlock = true;
  });
  await check('v1.0 blocklist.get -> 200 [{user_id}]', async () => {
    need(didBlock, 'blocklist.block');
    eq(await blockIds(), [blocked], 'blocked user ids');
  });
  await check('v1.0 blocklist.block self (never-seen user) -> 204', async () => {
    noContent(await call(v1.blocklist.blockAsync(owner, owner)));
  });
  await check('v1.0 blocklist.unblock -> 204, GET reflects it', async () => {
    need(didBlock, 'blocklist.block');
    noContent(await call(v1.blocklist.unblockAsync(owner, blocked)));
    ok(!(await blockIds()).includes(blocked), 'unblocked user is gone');
  });
  await check('v1.0 blocklist.get never-seen owner -> 200 []', async () => {
    const r = await call(v1.blocklist.getAsync(user('nobody-blocks')));
    status(r, 200);
    eq(r.body, [], 'body');
  });
}

async function protocol() {
  // Auth and version negotiation, through the client, on a route that exists today.
  await check('bad token -> 401, JSON object body', async () => {
    const bad = client({ token: 'not-a-valid-token' });
    error(await call(bad.identities.getAsync(user('ident'))), 401);
  });
  await check('unknown version 9.9 -> 406 invalid_header', async () => {
    const bad = client({ version: '9.9' });
    error(await call(bad.identities.getAsync(user('ident'))), 406, { id: 'invalid_header', code: 107 });
  });
}

// ---------------------------------------------------------------------------------------------
// Pass 2: API version 3.0 (conversations and identities keep their request shapes)

async function identitiesV3() {
  const uid = user('v3-ident');
  let created;
  await check('v3.0 identities.create -> 201, empty body', async () => {
    const r = await call(v3.identities.createAsync(uid, { display_name: 'V3 User', avatar_url: 'https://example.com/v3.png' }));
    status(r, 201);
    eq(r.body, '', 'body');
    created = true;
  });
  await check('v3.0 identities.get -> 200 with id, url, user_id, identity_type', async () => {
    need(created, 'v3.0 identities.create');
    const r = await call(v3.identities.getAsync(uid));
    status(r, 200);
    matches(
      r.body,
      {
        id: `layer:///identities/${uid}`,
        user_id: uid,
        display_name: 'V3 User',
        avatar_url: 'https://example.com/v3.png',
        identity_type: 'user',
      },
      'identity',
    );
    ok(typeof r.body.url === 'string' && r.body.url.length > 0, 'url present', r.body.url);
  });
  await check('v3.0 identities.edit -> 204, GET reflects it', async () => {
    need(created, 'v3.0 identities.create');
    noContent(await call(v3.identities.editAsync(uid, { first_name: 'Vee' })));
    const r = await call(v3.identities.getAsync(uid));
    status(r, 200);
    matches(r.body, { first_name: 'Vee', display_name: 'V3 User' }, 'identity');
  });
  await check('v3.0 identities.replace -> 204, GET reflects it', async () => {
    need(created, 'v3.0 identities.create');
    noContent(await call(v3.identities.replaceAsync(uid, { display_name: 'V3 Replaced', avatar_url: 'https://example.com/r.png' })));
    const r = await call(v3.identities.getAsync(uid));
    status(r, 200);
    matches(r.body, { display_name: 'V3 Replaced', first_name: null }, 'identity');
  });
  return { uid, created };
}

async function conversationsV3(identity) {
  const { uid } = identity;
  const [other, third] = ['v3-other', 'v3-third'].map(user);
  let conv;
  await check('v3.0 conversations.create -> 201, participants are BasicIdentity objects', async () => {
    need(identity.created, 'v3.0 identities.create');
    const r = await call(v3.conversations.createAsync({ participants: [uid, other], distinct: false, metadata: { a: 'b' } }));
    status(r, 201);
    conversation(r.body, 3);
    eq(userIds(r.body.participants), [uid, other], 'participant user_ids');
    matches(
      r.body.participants[0],
      { id: `layer:///identities/${uid}`, display_name: 'V3 Replaced', avatar_url: 'https://example.com/r.png' },
      'participants[0]',
    );
    conv = r.body;
  });
  await check('v3.0 conversations.create with identity ids -> 201', async () => {
    const r = await call(
      v3.conversations.createAsync({ participants: [`layer:///identities/${other}`, `layer:///identities/${third}`], distinct: false }),
    );
    status(r, 201);
    conversation(r.body, 3);
    eq(userIds(r.body.participants), [other, third], 'participant user_ids');
  });
  await check('v3.0 conversations.create {} -> 422 missing_property participants', async () => {
    error(await call(v3.conversations.createAsync({})), 422, {
      id: 'missing_property',
      code: 104,
      data: { property: 'participants' },
    });
  });
  await check('v3.0 conversations.get -> 200, BasicIdentity participants', async () => {
    need(conv, 'v3.0 conversations.create');
    const r = await call(v3.conversations.getAsync(conv.id));
    status(r, 200);
    conversation(r.body, 3);
    eq(userIds(r.body.participants), [uid, other], 'participant user_ids');
  });
  await check('v3.0 conversations.getFromUser -> 200', async () => {
    need(conv, 'v3.0 conversations.create');
    const r = await call(v3.conversations.getFromUserAsync(other, conv.id));
    status(r, 200);
    conversation(r.body, 3);
    eq(r.body.id, conv.id, 'id');
  });
  await check('v3.0 conversations.getAllFromUser -> 200', async () => {
    need(conv, 'v3.0 conversations.create');
    const r = await call(v3.conversations.getAllFromUserAsync(other, { page_size: 10 }));
    status(r, 200);
    ok(Array.isArray(r.body), 'body is an array', r.body);
    r.body.forEach((c) => conversation(c, 3));
    ok(r.body.some((c) => c.id === conv.id), 'contains the conversation', r.body.map((c) => c.id));
  });
  const userIdsNow = async (expected) => {
    const r = await call(v3.conversations.getAsync(conv.id));
    status(r, 200);
    conversation(r.body, 3);
    eq(userIds(r.body.participants), expected, 'participant user_ids after the change');
    return r.body;
  };
  await check('v3.0 conversations.addParticipants (identity id) -> 204', async () => {
    need(conv, 'v3.0 conversations.create');
    noContent(await call(v3.conversations.addParticipantsAsync(conv.id, [`layer:///identities/${third}`])));
    await userIdsNow([uid, other, third]);
  });
  await check('v3.0 conversations.removeParticipants (identity id) -> 204', async () => {
    need(conv, 'v3.0 conversations.create');
    noContent(await call(v3.conversations.removeParticipantsAsync(conv.id, [`layer:///identities/${other}`])));
    await userIdsNow([uid, third]);
  });
  await check('v3.0 conversations.replaceParticipants -> 204', async () => {
    need(conv, 'v3.0 conversations.create');
    noContent(await call(v3.conversations.replaceParticipantsAsync(conv.id, [third, uid])));
    await userIdsNow([third, uid]);
  });
  await check('v3.0 conversations.edit -> 204', async () => {
    need(conv, 'v3.0 conversations.create');
    noContent(
      await call(v3.conversations.editAsync(conv.id, [{ operation: 'set', property: 'metadata.stats.counter', value: '10' }])),
    );
    const r = await userIdsNow([third, uid]);
    eq(r.metadata, { a: 'b', stats: { counter: '10' } }, 'metadata');
  });
  await check('v3.0 conversations.setMetadataProperties / deleteMetadataProperties -> 204', async () => {
    need(conv, 'v3.0 conversations.create');
    noContent(await call(v3.conversations.setMetadataPropertiesAsync(conv.id, { c: 'd' })));
    noContent(await call(v3.conversations.deleteMetadataPropertiesAsync(conv.id, { a: true, stats: true })));
    const r = await userIdsNow([third, uid]);
    eq(r.metadata, { c: 'd' }, 'metadata');
  });
  await check('v3.0 conversations.delete -> 204', async () => {
    need(conv, 'v3.0 conversations.create');
    noContent(await call(v3.conversations.deleteAsync(conv.id)));
  });
  await check('v3.0 identities.delete -> 204, then GET -> 404', async () => {
    need(identity.created, 'v3.0 identities.create');
    noContent(await call(v3.identities.deleteAsync(uid)));
    error(await call(v3.identities.getAsync(uid)), 404);
  });
}

async function main() {
  console.log(`layer-api 2.3.3 against ${process.env.LAYER_INTEROP_URL} (app ${cfg.appId}, run ${tag})`);
  await protocol();
  await identitiesV1();
  await conversationsV1();
  await messagesV1();
  await announcementsV1();
  await blocklistV1();
  const identity = await identitiesV3();
  await conversationsV3(identity);
  agent.destroy();
  process.exitCode = report.finish();
}

main().catch((err) => {
  console.error('layer_api.js crashed:', err);
  process.exitCode = 2;
});
