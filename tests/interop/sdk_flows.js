'use strict';
// The flows both Web SDK suites run (websdk.js: layer-websdk 3.4.18, API 2.0; web_xdk.js:
// @layerhq/web-xdk 4.0.6, API 3.0) against a running layer-server, through the SDKs' public
// model methods, checking the outcome on the server with raw REST / Platform API requests.
//
// Users: alice is the SDK user; bob is driven with raw Client API requests for the seed data
// (the REST flows check what the SDK does against state made independently of it) and, for the
// real-time checks, also runs his own SDK client in a forked peer process (W keeps one client per
// appId per process, X is a singleton; peer() below), on the second node when run.sh runs two
// (LAYER_PEER_URL); carol (a user id with '.' and '@'), dave and erin exist through the Platform
// API. Every id carries a per-run tag, so re-runs against one app do not collide.
//
// The real-time checks wait at most REALTIME_TIMEOUT_MS for what travels over the WebSocket; they
// run last, on their own client, because the SDKs queue WebSocket requests in the same sequential
// queue as REST mutations (client-wire-protocol.md §0.11).

const { fork } = require('node:child_process');
const crypto = require('node:crypto');
const assert = require('node:assert');
const { isDeepStrictEqual } = require('node:util');
const { performance } = require('node:perf_hooks');
const { runner, need, oneLine } = require('./common');
const {
  sdkConfig,
  identityProvider,
  request,
  clientApi,
  platformApi,
  rawLogin,
  expectStatus,
  waitEvent,
  waitUntil,
  withTimeout,
  describeError,
  TIMEOUT_MS,
  REALTIME_TIMEOUT_MS,
} = require('./sdk_common');

const identityId = (userId) => `layer:///identities/${encodeURIComponent(userId)}`;
const uuidOf = (layerId) => layerId.split('/').pop();
const newId = (type) => `layer:///${type}/${crypto.randomUUID()}`;

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

/** The user ids of an SDK participants array (Identity objects). */
const userIdsOf = (participants) => participants.map((p) => p.userId).sort();

/**
 * Runs every flow for one SDK: `sdk` = {suite, sdkVersion, version, load(cfg)}; `load` loads the
 * SDK with the shims and returns the adapter:
 *   { sdkVersion, version, Query: {Conversation, Message, Identity, Announcement}, DELETION_MODE,
 *     LayerError, newClient(options), parts(message) -> [MessagePart], newMessage(conversation, parts) }
 * With `--peer` on the command line this process is the forked second user instead (peer()).
 */
async function run(sdk) {
  if (process.argv[2] === '--peer') return peer(sdk);

  const cfg = sdkConfig();
  const { check, report } = runner(sdk.suite);
  const idp = identityProvider(cfg.idp);
  const platform = platformApi(cfg);
  const tag = crypto.randomBytes(4).toString('hex');
  const ALICE = `alice-${tag}`;
  const BOB = `bob-${tag}`;
  const CAROL = `carol.${tag}@example.com`;
  const DAVE = `dave-${tag}`;
  const ERIN = `erin-${tag}`;
  const profile = (name) => ({
    display_name: `${name[0].toUpperCase()}${name.slice(1)} ${tag}`,
    avatar_url: `https://example.com/avatars/${name}-${tag}.png`,
  });
  const children = new Set();
  let api; // the adapter
  let client; // the current SDK client (alice)
  const clients = []; // every client created, destroyed at the end
  const challenges = []; // {nonce, userId} per challenge answered
  const syncLog = []; // every sync:success / sync:error of the current client's SyncManager

  const via = cfg.sdkUrl === cfg.url ? '' : ` as ${cfg.sdkUrl}`;
  const peerVia = process.env.LAYER_PEER_URL ? `; bob's SDK on a second node, ${process.env.LAYER_PEER_URL}` : '';
  console.log(`${sdk.suite} ${sdk.sdkVersion} against ${cfg.url}${via}${peerVia} (app ${cfg.appId}, run ${tag})`);
  // An exception the SDK throws inside one of its own callbacks must not end the suite: the
  // check waiting on it times out and fails instead.
  process.on('uncaughtException', (err) => console.error(`uncaught exception (inside the SDK?): ${err && err.stack}`));
  process.on('unhandledRejection', (err) => console.error(`unhandled rejection: ${err && err.stack}`));

  // -------------------------------------------------------------------------------------------
  // Helpers

  /** A new client for alice with the challenge handler and the sync recorder attached. */
  function newClient() {
    if (client && !client.isDestroyed) client.destroy();
    client = api.newClient({ appId: cfg.appId, url: cfg.sdkUrl, websocketUrl: cfg.websocketUrl });
    clients.push(client);
    client.on('challenge', (evt) => {
      challenges.push({ nonce: evt.nonce, client });
      evt.callback(idp.token({ userId: ALICE, nonce: evt.nonce, profile: profile('alice') }));
    });
    syncLog.length = 0;
    for (const name of ['sync:success', 'sync:error']) {
      client.syncManager.on(name, (evt) => {
        syncLog.push({
          event: name,
          target: evt.target,
          operation: evt.request.operation,
          method: evt.request.method,
          url: evt.request.url,
          data: evt.request.data,
          error: evt.error,
        });
      });
    }
    return client;
  }

  /**
   * Waits for the SyncManager to finish a queued request matching `match` (fields of a syncLog
   * entry) that was not yet finished when `fn` ran; fails on sync:error.
   */
  async function synced(match, fn, { timeout, what } = {}) {
    const before = syncLog.length;
    fn();
    const matches = (e) => Object.entries(match).every(([k, v]) => (typeof v === 'function' ? v(e[k]) : e[k] === v));
    const entry = await waitUntil(
      () => syncLog.slice(before).find(matches),
      [[client.syncManager, 'sync:success'], [client.syncManager, 'sync:error']],
      { timeout, what: what || `the SDK's ${oneLine(match)} request`, describe: () => syncLog.slice(before) },
    );
    if (entry.event === 'sync:error') throw new Error(`${what || 'request'} failed: ${describeError(entry.error)}`);
    return entry;
  }

  /** Waits until a query has fetched what it will fetch for its current window. */
  async function queryLoaded(query, count, what) {
    await waitUntil(
      () => !query.isFiring && (query.data.length >= count || query.pagedToEnd),
      [[query, 'change'], [query, 'error']],
      { what, describe: () => ({ size: query.data.length, firing: query.isFiring, pagedToEnd: query.pagedToEnd }) },
    );
  }

  /** Pages a query with `step` more items each time until it has paged to the end. */
  async function pageAll(query, step, what) {
    const sizes = [];
    await queryLoaded(query, step, what);
    sizes.push(query.data.length);
    while (!query.pagedToEnd) {
      const want = query.data.length + step;
      query.update({ paginationWindow: want });
      await queryLoaded(query, want, what);
      sizes.push(query.data.length);
      if (sizes.length > 20) throw new Error(`${what}: no end after 20 pages (sizes ${sizes})`);
    }
    return sizes;
  }

  const newQuery = (options) => client.createQuery(options);

  const aliceApi = () => clientApi(cfg.url, api.version, client.sessionToken);
  let bob; // raw Client API as bob

  // -------------------------------------------------------------------------------------------
  // Load and authenticate

  await check('load: SDK loads in Node with the browser shims (version as pinned)', async () => {
    api = sdk.load(cfg);
    eq(api.sdkVersion, sdk.sdkVersion, 'SDK version');
  });

  let authenticated = false;
  await check('auth: connect -> POST /nonces, challenge, identity token, POST /sessions -> ready', async () => {
    need(api, 'the SDK');
    newClient();
    const events = Promise.all([
      waitEvent(client, 'authenticated', { failOn: ['connected-error', 'authenticated-error'] }),
      waitEvent(client, 'ready', { failOn: ['connected-error', 'authenticated-error'] }),
    ]);
    client.connect(ALICE);
    await events;
    eq(challenges.length, 1, 'challenges answered');
    ok(typeof challenges[0].nonce === 'string' && challenges[0].nonce.length > 0, 'challenge carries a nonce', challenges[0].nonce);
    ok(client.isAuthenticated && client.isReady, 'client authenticated and ready');
    ok(typeof client.sessionToken === 'string' && client.sessionToken.length > 0, 'session token', client.sessionToken);
    authenticated = true;
  });

  await check('auth: session owner identity loaded from GET /identities/:user_id (user_id, display_name, full)', async () => {
    need(authenticated || null, 'auth');
    const user = client.user;
    eq(user.userId, ALICE, 'client.user.userId');
    eq(user.id, identityId(ALICE), 'client.user.id');
    ok(user.isFullIdentity, 'the identity was loaded as a full identity (server response has metadata)', user.toObject());
    eq(user.displayName, profile('alice').display_name, 'displayName');
    eq(user.avatarUrl, profile('alice').avatar_url, 'avatarUrl');
    const r = expectStatus(await aliceApi().get(`/identities/${encodeURIComponent(ALICE)}`), 200, 'GET own identity');
    eq(r.body.user_id, ALICE, 'user_id');
    eq(r.body.display_name, profile('alice').display_name, 'persisted display_name (from the identity token)');
    eq(r.body.avatar_url, profile('alice').avatar_url, 'persisted avatar_url');
  });

  // -------------------------------------------------------------------------------------------
  // Seed data through REST (creates need the WebSocket in the SDKs)

  const conv = []; // C0..C4: layer ids of bob+alice conversations, created in this order
  const msgs = []; // C0's messages M0..M4 (oldest first): {id, parts}
  const extra = {}; // other messages by role
  await check('seed: bob logs in with a raw identity token; carol, dave and erin created via the Platform API', async () => {
    need(authenticated || null, 'auth');
    bob = await rawLogin(cfg, api.version, BOB, profile('bob'));
    const extraFields = {
      [ERIN]: { first_name: 'Erin', last_name: 'Example', email_address: `erin-${tag}@example.com`, metadata: { team: 'interop' } },
    };
    for (const [user, name] of [[CAROL, 'carol'], [DAVE, 'dave'], [ERIN, 'erin']]) {
      const r = await platform.post(`/users/${encodeURIComponent(user)}/identity`, { ...profile(name), ...extraFields[user] });
      expectStatus(r, 201, `Platform create identity ${user}`);
    }
  });

  const part = (messageId, mimeType, body) => ({
    mime_type: mimeType,
    body,
    ...(api && api.version === '3.0' ? { id: `${messageId}/parts/${crypto.randomUUID()}` } : {}),
  });
  // The server keeps milliseconds; seeds that the flows expect in a given order get distinct
  // timestamps (the server stamps a request after the previous answer arrived here).
  const nextMillisecond = () => new Promise((resolve) => setTimeout(resolve, 2));
  async function bobSends(conversationId, text) {
    await nextMillisecond();
    const id = newId('messages');
    const parts = [part(id, 'text/plain', text), part(id, 'application/json', JSON.stringify({ text, tag }))];
    const r = await bob.post(`/conversations/${uuidOf(conversationId)}/messages`, { id, parts });
    expectStatus(r, 201, `bob sends "${text}"`);
    eq(r.body.id, id, 'message id (client-chosen)');
    return { id, parts, position: r.body.position };
  }

  await check('seed: bob creates 5 conversations with alice and 11 multi-part messages (Client API, client-chosen ids)', async () => {
    need(bob, 'bob');
    for (let i = 0; i < 5; i++) {
      await nextMillisecond();
      const id = newId('conversations');
      const r = await bob.post('/conversations', {
        id,
        participants: [identityId(ALICE), identityId(BOB)],
        distinct: false,
        metadata: { seq: String(i), title: `conversation ${i} ${tag}` },
      });
      expectStatus(r, 201, `create conversation ${i}`);
      eq(r.body.id, id, 'conversation id (client-chosen)');
      conv.push(id);
    }
    // One message in C2, one in C4, three in C1, one in C3, then five in C0: by last message
    // the order is C0, C3, C1, C4, C2; by creation it is C4, C3, C2, C1, C0.
    await bobSends(conv[2], 'only message of 2');
    await bobSends(conv[4], 'only message of 4');
    extra.first = await bobSends(conv[1], 'first message of 1');
    extra.deleteAll = await bobSends(conv[1], 'delete me for everyone');
    extra.deleteMine = await bobSends(conv[1], 'delete me on my devices');
    await bobSends(conv[3], 'only message of 3');
    for (let n = 0; n < 5; n++) msgs.push(await bobSends(conv[0], `message ${n}`));
  });

  // -------------------------------------------------------------------------------------------
  // Queries and paging

  async function conversationPaging(sortBy, serverSort, expectedIdx, name) {
    await check(`query: conversations sort_by=${serverSort}, pages of 2, Layer-Count`, async () => {
      need(conv.length === 5 || null, 'the seeded conversations');
      const query = newQuery({ model: api.Query.Conversation, paginationWindow: 2, sortBy });
      try {
        await queryLoaded(query, 2, `first page of ${name}`);
        eq(query.data.length, 2, 'first page size');
        eq(query.totalSize, 5, 'totalSize (Layer-Count)');
        ok(!query.pagedToEnd, 'not paged to end after the first page');
        const sizes = await pageAll(query, 2, name);
        eq(sizes, [2, 4, 5], 'sizes after each page');
        const expected = expectedIdx.map((i) => conv[i]);
        eq(query.data.map((c) => c.id), expected, `${name} order`);
        // The server's own order, unpaged, agrees.
        const r = expectStatus(await aliceApi().get(`/conversations?sort_by=${serverSort}&page_size=100`), 200, 'GET /conversations');
        eq(r.body.map((c) => c.id), expected, 'server order (unpaged)');
        eq(r.headers['layer-count'], '5', 'Layer-Count');
        const c0 = query.data.find((c) => c.id === conv[0]);
        eq(userIdsOf(c0.participants), [ALICE, BOB].sort(), 'participants');
        eq(c0.metadata, { seq: '0', title: `conversation 0 ${tag}` }, 'metadata');
        // The count converges: a Conversation update rendered before the last send committed
        // can reach the SDK after the query's REST page (which already had 5), and the next
        // update sets it back; so wait for 5 rather than read it once.
        await waitUntil(() => c0.unreadCount === 5, [[client, 'conversations:change']], {
          timeout: REALTIME_TIMEOUT_MS,
          what: 'unreadCount (unread_message_count) 5',
          describe: () => ({ unreadCount: c0.unreadCount }),
        });
        ok(c0.lastMessage && c0.lastMessage.id === msgs[4].id, 'lastMessage is the newest message', c0.lastMessage && c0.lastMessage.id);
      } finally {
        query.destroy();
      }
    });
  }
  await conversationPaging([{ createdAt: 'desc' }], 'created_at', [4, 3, 2, 1, 0], 'conversations by created_at');
  await conversationPaging([{ 'lastMessage.sentAt': 'desc' }], 'last_message', [0, 3, 1, 4, 2], 'conversations by last_message');

  let messagesQuery;
  let c0; // the SDK's Conversation C0
  await check('query: messages of a conversation, pages of 2, newest first, Layer-Count', async () => {
    need(msgs.length === 5 || null, 'the seeded messages');
    c0 = client.getConversation(conv[0], true);
    if (!c0.isSaved()) await waitEvent(c0, 'conversations:loaded', { failOn: ['conversations:loaded-error'] });
    messagesQuery = newQuery({
      model: api.Query.Message,
      predicate: `conversation.id = "${conv[0]}"`,
      paginationWindow: 2,
    });
    await queryLoaded(messagesQuery, 2, 'first page of messages');
    eq(messagesQuery.totalSize, 5, 'totalSize (Layer-Count)');
    const sizes = await pageAll(messagesQuery, 2, 'messages');
    eq(sizes, [2, 4, 5], 'sizes after each page');
    eq(messagesQuery.data.map((m) => m.id), msgs.map((m) => m.id).reverse(), 'message order (newest first)');
    const positions = messagesQuery.data.map((m) => m.position);
    ok(positions.every((p, i) => i === 0 || p < positions[i - 1]), 'positions strictly decreasing', positions);
  });

  await check('messages: multi-part bodies parsed (mime types, bodies, order; sender; conversation)', async () => {
    need(messagesQuery, 'the messages query');
    for (const seeded of msgs) {
      const m = messagesQuery.data.find((x) => x.id === seeded.id);
      ok(m, `message ${seeded.id} in the query`);
      const parts = api.parts(m);
      eq(parts.map((p) => p.mimeType), seeded.parts.map((p) => p.mime_type), 'part mime types');
      eq(parts.map((p) => p.body), seeded.parts.map((p) => p.body), 'part bodies');
      eq(m.sender.userId, BOB, 'sender.userId');
      eq(m.conversationId, conv[0], 'conversationId');
      ok(m.sentAt instanceof Date && !isNaN(m.sentAt), 'sentAt is a Date', m.sentAt);
    }
  });

  if (sdk.version === '3.0') {
    await check('messages: part ids chosen by the sender are kept (API 3.0)', async () => {
      need(messagesQuery, 'the messages query');
      for (const seeded of msgs) {
        const m = messagesQuery.data.find((x) => x.id === seeded.id);
        eq(api.parts(m).map((p) => p.id), seeded.parts.map((p) => p.id), 'part ids');
      }
    });
  }

  // -------------------------------------------------------------------------------------------
  // Receipts

  const me = () => identityId(ALICE);
  await check('receipts: bob\'s messages are unread for alice (is_unread) and sent receipts go out as "delivery"', async () => {
    need(messagesQuery, 'the messages query');
    for (const m of messagesQuery.data) ok(m.isRead === false, `message ${m.id} isRead false`, m.isRead);
    // The SDK posts {type: delivery} for every loaded message whose own status is sent/pending.
    await waitUntil(
      () =>
        msgs.every((m) =>
          syncLog.some((e) => e.event === 'sync:success' && e.target === m.id && e.data && e.data.type === 'delivery'),
        ),
      [[client.syncManager, 'sync:success'], [client.syncManager, 'sync:error']],
      { what: 'delivery receipts for the 5 messages', describe: () => syncLog.map((e) => `${e.event} ${e.target} ${oneLine(e.data)}`) },
    );
    const r = expectStatus(await bob.get(`/conversations/${uuidOf(conv[0])}/messages?page_size=100`), 200, 'bob lists messages');
    for (const m of r.body.filter((x) => msgs.some((s) => s.id === x.id))) {
      eq(m.recipient_status[me()], 'delivered', `recipient_status of alice on ${m.id} (bob's view)`);
    }
  });

  await check('receipts: message.isRead = true -> read receipt; recipient_status read, is_unread false, unread count 4', async () => {
    need(messagesQuery, 'the messages query');
    const m = messagesQuery.data.find((x) => x.id === msgs[2].id);
    await synced({ target: m.id, data: (d) => d && d.type === 'read' }, () => {
      m.isRead = true;
    });
    const asBob = expectStatus(await bob.get(`/messages/${uuidOf(m.id)}`), 200, 'bob GET message');
    eq(asBob.body.recipient_status[me()], 'read', "alice's recipient_status (bob's view)");
    const asAlice = expectStatus(await aliceApi().get(`/messages/${uuidOf(m.id)}`), 200, 'alice GET message');
    eq(asAlice.body.is_unread, false, 'is_unread (alice)');
    const other = expectStatus(await aliceApi().get(`/messages/${uuidOf(msgs[3].id)}`), 200, 'alice GET another message');
    eq(other.body.is_unread, true, 'is_unread of an unread message (alice)');
    const c = expectStatus(await aliceApi().get(`/conversations/${uuidOf(conv[0])}`), 200, 'alice GET conversation');
    eq(c.body.unread_message_count, 4, 'unread_message_count');
    const p = expectStatus(await platform.get(`/conversations/${uuidOf(conv[0])}/messages/${uuidOf(m.id)}`), 200, 'Platform GET message');
    eq(p.body.recipient_status[me()], 'read', "alice's recipient_status (Platform API)");
  });

  await check('receipts: conversation.markAllMessagesAsRead() -> every message read, unread_message_count 0', async () => {
    need(c0, 'conversation C0');
    ok(c0.lastMessage && c0.lastMessage.id === msgs[4].id, 'C0.lastMessage is the newest message', c0.lastMessage && c0.lastMessage.id);
    await synced({ target: conv[0], url: (u) => /\/mark_all_read$/.test(u) }, () => c0.markAllMessagesAsRead());
    const r = expectStatus(await aliceApi().get(`/conversations/${uuidOf(conv[0])}/messages?page_size=100`), 200, 'alice lists messages');
    eq(r.body.map((m) => m.is_unread), [false, false, false, false, false], 'is_unread of every message');
    const b = expectStatus(await bob.get(`/conversations/${uuidOf(conv[0])}/messages?page_size=100`), 200, 'bob lists messages');
    eq(b.body.map((m) => m.recipient_status[me()]), ['read', 'read', 'read', 'read', 'read'], "alice's recipient_status (bob's view)");
    const c = expectStatus(await aliceApi().get(`/conversations/${uuidOf(conv[0])}`), 200, 'alice GET conversation');
    eq(c.body.unread_message_count, 0, 'unread_message_count');
  });

  // -------------------------------------------------------------------------------------------
  // Conversation patches: metadata and participants

  async function loadConversation(id) {
    const c = client.getConversation(id, true);
    if (!c.isSaved()) await waitEvent(c, 'conversations:loaded', { failOn: ['conversations:loaded-error'] });
    return c;
  }
  const isPatch = (u) => typeof u === 'string';

  await check('metadata: setMetadataProperties -> PATCH set (nested keys), server has it', async () => {
    need(conv[1], 'conversation C1');
    const c = await loadConversation(conv[1]);
    await synced({ target: conv[1], method: 'PATCH', url: isPatch }, () =>
      c.setMetadataProperties({ color: 'blue', 'settings.sound': 'chime' }),
    );
    const r = expectStatus(await bob.get(`/conversations/${uuidOf(conv[1])}`), 200, 'bob GET conversation');
    eq(r.body.metadata, { seq: '1', title: `conversation 1 ${tag}`, color: 'blue', settings: { sound: 'chime' } }, 'metadata');
    eq(c.metadata, r.body.metadata, 'SDK metadata');
  });

  await check('metadata: deleteMetadataProperties -> PATCH delete, server has it', async () => {
    need(conv[1], 'conversation C1');
    const c = await loadConversation(conv[1]);
    await synced({ target: conv[1], method: 'PATCH', url: isPatch }, () => c.deleteMetadataProperties(['color', 'settings.sound']));
    const r = expectStatus(await bob.get(`/conversations/${uuidOf(conv[1])}`), 200, 'bob GET conversation');
    eq(r.body.metadata, { seq: '1', title: `conversation 1 ${tag}`, settings: {} }, 'metadata');
  });

  await check('participants: addParticipants -> PATCH add (identity id), server has the participant', async () => {
    need(conv[2], 'conversation C2');
    const c = await loadConversation(conv[2]);
    await synced({ target: conv[2], method: 'PATCH' }, () => c.addParticipants([CAROL]));
    const r = expectStatus(await platform.get(`/conversations/${uuidOf(conv[2])}`), 200, 'Platform GET conversation');
    eq(r.body.participants.map((p) => p.user_id).sort(), [ALICE, BOB, CAROL].sort(), 'participants (Platform API)');
    eq(userIdsOf(c.participants), [ALICE, BOB, CAROL].sort(), 'SDK participants');
  });

  await check('participants: removeParticipants -> PATCH remove, server has dropped the participant', async () => {
    need(conv[2], 'conversation C2');
    const c = await loadConversation(conv[2]);
    await synced({ target: conv[2], method: 'PATCH' }, () => c.removeParticipants([CAROL]));
    const r = expectStatus(await platform.get(`/conversations/${uuidOf(conv[2])}`), 200, 'Platform GET conversation');
    eq(r.body.participants.map((p) => p.user_id).sort(), [ALICE, BOB].sort(), 'participants (Platform API)');
  });

  // -------------------------------------------------------------------------------------------
  // Identities and following

  await check('identities: getIdentity(user, true) loads a full identity (GET /identities/:user_id)', async () => {
    need(bob, 'the seeded identities');
    ok(!client.getIdentity(ERIN), 'erin is not cached yet');
    const identity = client.getIdentity(ERIN, true);
    await waitEvent(identity, 'identities:loaded', { failOn: ['identities:loaded-error'] });
    ok(identity.isFullIdentity, 'full identity');
    eq(identity.userId, ERIN, 'userId');
    eq(identity.displayName, profile('erin').display_name, 'displayName');
    eq(identity.avatarUrl, profile('erin').avatar_url, 'avatarUrl');
    eq(
      [identity.firstName, identity.lastName, identity.emailAddress, identity.metadata],
      ['Erin', 'Example', `erin-${tag}@example.com`, { team: 'interop' }],
      'firstName, lastName, emailAddress, metadata',
    );
  });

  await check("identities: a user id with '.' and '@' round-trips (strictEncodeURI url, exact user_id)", async () => {
    need(bob, 'the seeded identities');
    const existing = client.getIdentity(CAROL);
    const identity = existing && existing.isFullIdentity ? existing : client.getIdentity(CAROL, true);
    if (!identity.isFullIdentity) await waitEvent(identity, 'identities:loaded', { failOn: ['identities:loaded-error'] });
    eq(identity.userId, CAROL, 'userId');
    eq(identity.displayName, profile('carol').display_name, 'displayName');
  });

  const following = async (user) => (await aliceApi().get(`/following/users/${encodeURIComponent(user)}`)).status;
  await check('identities: followIdentity -> PUT /following/users/:user_id, then the full identity is loaded', async () => {
    need(bob, 'the seeded identities');
    eq(await following(DAVE), 404, 'GET /following/users/dave before');
    const identity = client.followIdentity(DAVE);
    await waitEvent(identity, 'identities:loaded', { failOn: ['identities:loaded-error'], what: "dave's identity after follow" });
    ok(identity.isFullIdentity, 'full identity after follow');
    eq(identity.displayName, profile('dave').display_name, 'displayName');
    eq(await following(DAVE), 204, 'GET /following/users/dave after');
  });

  await check('identities: identities query (GET /identities) lists the followed users', async () => {
    need(bob, 'the seeded identities');
    const query = newQuery({ model: api.Query.Identity, paginationWindow: 100 });
    try {
      await queryLoaded(query, 100, 'identities');
      const ids = query.data.map((i) => i.userId);
      ok(ids.includes(DAVE), 'dave (followed explicitly) listed', ids);
      ok(ids.includes(BOB), 'bob (shares conversations) listed', ids);
      ok(!ids.includes(ALICE), 'not the session owner', ids);
      eq(query.totalSize, query.data.length, 'totalSize (Layer-Count)');
    } finally {
      query.destroy();
    }
  });

  await check('identities: unfollowIdentity -> DELETE /following/users/:user_id, no longer listed', async () => {
    need(bob, 'the seeded identities');
    await synced({ method: 'DELETE', url: (u) => /\/following\/users\//.test(u) }, () => client.unfollowIdentity(DAVE));
    eq(await following(DAVE), 404, 'GET /following/users/dave after unfollow');
    const list = expectStatus(await aliceApi().get('/identities?page_size=100'), 200, 'GET /identities');
    ok(!list.body.some((i) => i.user_id === DAVE), 'dave no longer listed', list.body.map((i) => i.user_id));
  });

  // -------------------------------------------------------------------------------------------
  // Deletion

  const bobSees = async (p) => (await bob.get(p)).status;
  await check('delete: conversation.delete(all_participants) -> gone for everyone', async () => {
    need(conv[3], 'conversation C3');
    const c = await loadConversation(conv[3]);
    await synced({ target: conv[3], method: 'DELETE' }, () => c.delete(api.DELETION_MODE.ALL));
    eq(await bobSees(`/conversations/${uuidOf(conv[3])}`), 404, "bob's GET");
    eq((await aliceApi().get(`/conversations/${uuidOf(conv[3])}`)).status, 404, "alice's GET");
  });

  await check('delete: conversation.delete(my_devices) -> hidden for alice only', async () => {
    need(conv[4], 'conversation C4');
    const c = await loadConversation(conv[4]);
    await synced({ target: conv[4], method: 'DELETE', url: (u) => /mode=my_devices/.test(u) }, () =>
      c.delete(api.DELETION_MODE.MY_DEVICES),
    );
    const list = expectStatus(await aliceApi().get('/conversations?page_size=100'), 200, "alice's list");
    ok(!list.body.some((x) => x.id === conv[4]), "not in alice's list", list.body.map((x) => x.id));
    const b = expectStatus(await bob.get(`/conversations/${uuidOf(conv[4])}`), 200, "bob's GET");
    eq(b.body.participants.map((p) => p.user_id).sort(), [ALICE, BOB].sort(), 'participants (alice stays)');
  });

  await check('delete: conversation.leave() (my_devices&leave=true) -> alice removed from participants', async () => {
    need(conv[2], 'conversation C2');
    const c = await loadConversation(conv[2]);
    await synced({ target: conv[2], method: 'DELETE', url: (u) => /leave=true/.test(u) }, () => c.leave());
    const b = expectStatus(await bob.get(`/conversations/${uuidOf(conv[2])}`), 200, "bob's GET");
    eq(b.body.participants.map((p) => p.user_id), [BOB], 'participants (bob only)');
    const list = expectStatus(await aliceApi().get('/conversations?page_size=100'), 200, "alice's list");
    ok(!list.body.some((x) => x.id === conv[2]), "not in alice's list", list.body.map((x) => x.id));
  });

  await check('messages: getMessage(id, true) loads a message by id (GET /messages/:uuid)', async () => {
    need(extra.first, 'the seeded messages');
    // The WebSocket delivered it live when bob sent it: drop the cached copy to load it by id.
    const cached = client.getMessage(extra.first.id);
    if (cached) cached.destroy();
    ok(!client.getMessage(extra.first.id), 'the message is not cached (any more)');
    const m = client.getMessage(extra.first.id, true);
    await waitEvent(m, 'messages:loaded', { failOn: ['messages:loaded-error'] });
    // (W 3.4.18 builds a plain layer.Message here, not a ConversationMessage: Syncable.load picks
    // the first registered class with the 'layer:///messages/' prefix; so no conversationId.)
    eq(m.sender.userId, BOB, 'sender.userId');
    eq(api.parts(m).map((p) => p.body), extra.first.parts.map((p) => p.body), 'part bodies');
  });

  // The messages to delete, as the SDK has them from a messages query (ConversationMessages).
  let c1Messages;
  async function loadMessage(id) {
    if (!c1Messages) {
      c1Messages = newQuery({ model: api.Query.Message, predicate: `conversation.id = "${conv[1]}"`, paginationWindow: 10 });
      await queryLoaded(c1Messages, 10, 'the messages of C1');
    }
    const m = c1Messages.data.find((x) => x.id === id);
    ok(m, `message ${id} in the messages query of C1`, c1Messages.data.map((x) => x.id));
    return m;
  }

  await check('delete: message.delete(all_participants) -> gone for bob too', async () => {
    need(extra.deleteAll, 'the seeded messages');
    const m = await loadMessage(extra.deleteAll.id);
    await synced({ target: m.id, method: 'DELETE' }, () => m.delete(api.DELETION_MODE.ALL));
    eq(await bobSees(`/messages/${uuidOf(m.id)}`), 404, "bob's GET");
  });

  await check('delete: message.delete(my_devices) -> hidden for alice, bob still has it', async () => {
    need(extra.deleteMine, 'the seeded messages');
    const m = await loadMessage(extra.deleteMine.id);
    await synced({ target: m.id, method: 'DELETE', url: (u) => /mode=my_devices/.test(u) }, () =>
      m.delete(api.DELETION_MODE.MY_DEVICES),
    );
    eq((await aliceApi().get(`/messages/${uuidOf(m.id)}`)).status, 404, "alice's GET");
    eq(await bobSees(`/messages/${uuidOf(m.id)}`), 200, "bob's GET");
  });

  // -------------------------------------------------------------------------------------------
  // Announcements (sent with the Platform API; listed, read and deleted through the SDK)

  let announcement;
  await check('announcements: query lists an announcement sent with the Platform API, unread, parts parsed', async () => {
    need(authenticated || null, 'auth');
    const r = await platform.post('/announcements', {
      recipients: [ALICE],
      sender: { name: `The System ${tag}` },
      parts: [{ mime_type: 'text/plain', body: `announcement ${tag}` }],
    });
    expectStatus(r, 202, 'Platform POST /announcements');
    const query = newQuery({ model: api.Query.Announcement, paginationWindow: 10 });
    await queryLoaded(query, 10, 'announcements');
    eq(query.data.map((a) => a.id), [r.body.id], 'announcement ids');
    eq(query.totalSize, 1, 'totalSize (Layer-Count)');
    announcement = query.data[0];
    eq(api.parts(announcement).map((p) => p.body), [`announcement ${tag}`], 'part bodies');
    eq(announcement.isRead, false, 'isRead');
  });

  // (sendReceipt, not `isRead = true`: W 3.4.18's isRead setter reads the message's conversation,
  // which announcements lack, and throws.)
  await check("announcements: sendReceipt('read') -> is_unread false; delete() -> gone", async () => {
    need(announcement, 'the announcement');
    const path = `/announcements/${uuidOf(announcement.id)}`;
    await synced({ target: announcement.id, data: (d) => d && d.type === 'read' }, () => announcement.sendReceipt('read'));
    const r = expectStatus(await aliceApi().get(path), 200, 'alice GET announcement');
    eq(r.body.is_unread, false, 'is_unread');
    await synced({ target: announcement.id, method: 'DELETE' }, () => announcement.delete());
    eq((await aliceApi().get(path)).status, 404, 'alice GET after delete');
  });

  // -------------------------------------------------------------------------------------------
  // Push tokens (native wrappers; plain REST)

  await check('push: registerAndroidPushToken -> POST /push_tokens accepted', async () => {
    need(authenticated || null, 'auth');
    const data = await withTimeout(
      new Promise((resolve) =>
        client.registerAndroidPushToken({ token: `gcm-${tag}`, deviceId: `device-${tag}`, senderId: '1234' }, resolve),
      ),
      5000,
      'the registerAndroidPushToken callback',
    );
    ok(!(data instanceof api.LayerError), 'no LayerError', data && describeError(data));
  });

  await check('push: unregisterPushToken -> DELETE /push_tokens/:device_id accepted', async () => {
    need(authenticated || null, 'auth');
    const data = await withTimeout(
      new Promise((resolve) => client.unregisterPushToken(`device-${tag}`, resolve)),
      5000,
      'the unregisterPushToken callback',
    );
    ok(!(data instanceof api.LayerError), 'no LayerError', data && describeError(data));
  });

  // -------------------------------------------------------------------------------------------
  // Sessions: re-authentication after a 401, restore, logout

  await check('session: revoked server-side -> socket closed / REST 401 with nonce -> challenge -> new session -> query re-runs', async () => {
    need(authenticated || null, 'auth');
    const oldToken = client.sessionToken;
    const before = challenges.length;
    // Listen first: revoking also closes the client's WebSocket, and its reconnect probe
    // (validateConnectionForWebsocket -> 401 + nonce) may deauthenticate the client before
    // any REST call does.
    const events = Promise.all([
      waitEvent(client, 'deauthenticated'),
      waitEvent(client, 'ready', { failOn: ['authenticated-error'] }),
    ]);
    events.catch(() => {}); // awaited below; this only keeps an early failure from being unhandled
    expectStatus(await platform.delete(`/users/${encodeURIComponent(ALICE)}/sessions`), 204, 'Platform DELETE sessions');
    const r = await clientApi(cfg.url, api.version, oldToken).get('/conversations');
    eq(r.status, 401, 'status with the revoked token');
    const query = newQuery({ model: api.Query.Conversation, paginationWindow: 10 });
    try {
      await events;
      await queryLoaded(query, 10, 'the conversations query after re-authentication');
      eq(challenges.length, before + 1, 'one new challenge');
      ok(client.sessionToken && client.sessionToken !== oldToken, 'a new session token', client.sessionToken);
      ok(query.data.length > 0, 'the query has data', query.data.length);
      expectStatus(await aliceApi().get('/conversations'), 200, 'raw GET with the new token');
    } finally {
      query.destroy();
    }
  });

  let restored = false;
  await check('session: connectWithSession(user, token) on a new client -> ready without a challenge, REST works', async () => {
    need(authenticated || null, 'auth');
    const token = client.sessionToken;
    const before = challenges.length;
    newClient();
    const ready = waitEvent(client, 'ready', { failOn: ['authenticated-error'] });
    client.connectWithSession(ALICE, token);
    await ready;
    eq(client.sessionToken, token, 'session token');
    ok(client.user.isFullIdentity, 'own identity loaded with the restored session');
    const query = newQuery({ model: api.Query.Conversation, paginationWindow: 10 });
    try {
      await queryLoaded(query, 10, 'conversations with the restored session');
      ok(query.data.some((c) => c.id === conv[0]), 'C0 listed', query.data.map((c) => c.id));
    } finally {
      query.destroy();
    }
    eq(challenges.length, before, 'no challenge');
    restored = true;
  });

  await check('session: logout() -> DELETE /sessions/:token; the token then gets 401 authentication_required + data.nonce', async () => {
    need(restored || null, 'the restored session');
    const token = client.sessionToken;
    await Promise.all([
      waitEvent(client, 'deauthenticated'),
      withTimeout(new Promise((resolve) => client.logout(resolve)), 5000, 'the logout callback'),
    ]);
    ok(!client.isAuthenticated, 'client not authenticated');
    const r = await clientApi(cfg.url, api.version, token).get('/conversations');
    eq(r.status, 401, 'status with the logged-out token');
    eq(r.body && r.body.id, 'authentication_required', 'error id');
    ok(r.body.data && typeof r.body.data.nonce === 'string' && r.body.data.nonce.length > 0, 'data.nonce', r.body.data);
  });

  // -------------------------------------------------------------------------------------------
  // Real time (the WebSocket, issue 5): a fresh client

  let live = false;
  await check('realtime: a fresh client authenticates again after logout (connect)', async () => {
    need(api, 'the SDK');
    newClient();
    const ready = waitEvent(client, 'ready', { failOn: ['connected-error', 'authenticated-error'] });
    client.connect(ALICE);
    await ready;
    live = true;
  });

  let socketOpen = false;
  await check('realtime: the client opens the WebSocket', async () => {
    need(live || null, 'the fresh client');
    if (!client.socketManager._isOpen()) {
      await waitEvent(client.socketManager, 'connected', { timeout: REALTIME_TIMEOUT_MS, what: 'the WebSocket to open' });
    }
    socketOpen = true;
  });
  // The checks below need an open socket; without one they fail at once (not run).
  const needSocket = () => need(socketOpen || null, 'an open WebSocket');

  await check('realtime: a queued REST request is not stuck behind Presence.sync', async () => {
    need(live || null, 'the fresh client');
    needSocket();
    // A newly seen identity queues Presence.sync (after 150 ms); a PATCH queued after it must
    // still go out.
    const queued = waitEvent(client.syncManager, 'sync:add', {
      filter: (evt) => evt.request.data && evt.request.data.method === 'Presence.sync',
      what: 'Presence.sync to be queued',
    });
    client.getIdentity(BOB, true);
    await queued;
    const c = await loadConversation(conv[1]);
    await synced({ target: conv[1], method: 'PATCH' }, () => c.setMetadataProperties({ live: 'yes' }), {
      timeout: REALTIME_TIMEOUT_MS,
      what: 'the PATCH queued behind Presence.sync',
    });
  });

  let created;
  await check('realtime: client.createConversation({participants, distinct: true}).send() creates it (Created)', async () => {
    need(live || null, 'the fresh client');
    needSocket();
    const c = client.createConversation({ participants: [BOB, CAROL], distinct: true, metadata: { by: 'sdk' } });
    const id = c.id;
    const sent = waitEvent(c, 'conversations:sent', {
      timeout: REALTIME_TIMEOUT_MS,
      failOn: ['conversations:sent-error'],
      what: 'conversations:sent',
    });
    c.send();
    const evt = await sent;
    eq(evt.result, 'Created', 'result');
    eq(c.id, id, 'the id the SDK chose');
    const r = expectStatus(await bob.get(`/conversations/${uuidOf(c.id)}`), 200, "bob's GET of the new conversation");
    eq(r.body.participants.map((p) => p.user_id).sort(), [ALICE, BOB, CAROL].sort(), 'participants');
    eq(r.body.metadata, { by: 'sdk' }, 'metadata');
    created = c;
  });

  await check('realtime: re-creating an existing distinct conversation finds it (conversations:sent Found)', async () => {
    need(live || null, 'the fresh client');
    needSocket();
    // bob creates the distinct conversation {alice, bob, dave} over REST; alice's SDK then
    // creates "the same" one and must be handed the existing id.
    const id = newId('conversations');
    expectStatus(
      await bob.post('/conversations', { id, participants: [identityId(ALICE), identityId(BOB), identityId(DAVE)], distinct: true }),
      201,
      'bob creates the distinct conversation',
    );
    const c = client.createConversation({ participants: [BOB, DAVE], distinct: true });
    const sent = waitEvent(c, 'conversations:sent', {
      timeout: REALTIME_TIMEOUT_MS,
      failOn: ['conversations:sent-error'],
      what: 'conversations:sent',
    });
    c.send();
    const evt = await sent;
    eq(evt.result, 'Found', 'result');
    eq(c.id, id, 'the existing conversation id');
  });

  await check('realtime: message.send() with two parts -> messages:sent, server has the parts', async () => {
    need(live || null, 'the fresh client');
    needSocket();
    const c = created || (await loadConversation(conv[0]));
    const m = api.newMessage(c, [
      { mimeType: 'text/plain', body: `sent by the SDK ${tag}` },
      { mimeType: 'application/json', body: JSON.stringify({ tag }) },
    ]);
    const sent = waitEvent(m, 'messages:sent', { timeout: REALTIME_TIMEOUT_MS, failOn: ['messages:sent-error'], what: 'messages:sent' });
    m.send();
    await sent;
    const r = expectStatus(await bob.get(`/messages/${uuidOf(m.id)}`), 200, "bob's GET of the sent message (the SDK's id)");
    eq(r.body.parts.map((p) => p.body), [`sent by the SDK ${tag}`, JSON.stringify({ tag })], 'part bodies');
    if (api.version === '3.0') eq(r.body.parts.map((p) => p.id), api.parts(m).map((p) => p.id), 'part ids (the SDK chose them)');
  });

  // A second SDK user in a forked process (W keeps one client per appId per process, X is a
  // singleton): bob's own SDK client, on the second node when run.sh runs two (LAYER_PEER_URL).
  // What bob's SDK sees comes back over IPC: every messages:add with its time, and the results of
  // the calls below (peer() documents them).
  let peerProc;
  const peerSeen = new Map(); // message id -> when bob's SDK fired messages:add for it
  let peerSeq = 0;
  const peerUp = () => need(peerProc && peerProc.connected ? peerProc : null, 'the peer');
  /** Calls an op of the peer (see peer()) and resolves with its result. */
  async function peerCall(op, args = {}, timeout = TIMEOUT_MS + REALTIME_TIMEOUT_MS + 2000) {
    const seq = ++peerSeq;
    const answer = peerMessage(peerProc, (m) => m.type === 'result' && m.seq === seq, timeout, `the peer's ${op}`);
    peerProc.send({ type: 'call', seq, op, args });
    const r = await answer;
    if (!r.ok) throw new Error(`peer ${op}: ${r.error}`);
    return r.value;
  }
  /** Resolves with the time bob's SDK fired messages:add for message `id`. */
  function peerHas(id, timeout = REALTIME_TIMEOUT_MS) {
    if (peerSeen.has(id)) return Promise.resolve(peerSeen.get(id));
    const p = peerMessage(peerProc, (m) => m.type === 'message' && m.id === id, timeout, `messages:add of ${id} on bob's client`).then(
      (m) => m.at,
    );
    p.catch(() => {}); // awaited by the caller; keeps an early failure from being unhandled
    return p;
  }
  const changedProps = (evt) => (evt.changes ? evt.changes.map((ch) => ch.property) : [evt.property]);
  /**
   * Starts recording `<type>:change` events of `property` on the object `id` on alice's client;
   * returns wait(), which resolves once there was one and `condition()` holds (deadline from the
   * call of wait(), made once bob's SDK has finished its request).
   */
  function aliceSeesChange(type, id, property, condition, what) {
    let changed = false;
    const ctx = {};
    client.on(
      `${type}:change`,
      (evt) => {
        if (evt.target && evt.target.id === id && changedProps(evt).includes(property)) changed = true;
      },
      ctx,
    );
    return () =>
      waitUntil(() => changed && condition(), [[client, `${type}:change`]], {
        timeout: REALTIME_TIMEOUT_MS,
        what,
        describe: () => ({ changed }),
      }).finally(() => client.off(null, null, ctx));
  }
  /** Alice's SDK sends a text message to `c` and waits for messages:sent. */
  async function aliceSends(c, text) {
    const m = api.newMessage(c, [{ mimeType: 'text/plain', body: text }]);
    const sent = waitEvent(m, 'messages:sent', { timeout: REALTIME_TIMEOUT_MS, failOn: ['messages:sent-error'], what: 'messages:sent' });
    m.send();
    await sent;
    return m;
  }

  await check('peer: a second SDK user in a forked process authenticates (ready) and opens its WebSocket', async () => {
    need(bob, 'bob');
    const env = { ...process.env, LAYER_PEER_USER: BOB, LAYER_PEER_PROFILE: JSON.stringify(profile('bob')) };
    if (process.env.LAYER_PEER_URL) env.LAYER_INTEROP_URL = process.env.LAYER_PEER_URL;
    peerProc = fork(process.argv[1], ['--peer'], { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.add(peerProc);
    peerProc.on('exit', () => children.delete(peerProc));
    peerProc.on('message', (m) => {
      if (m.type === 'message' && !peerSeen.has(m.id)) peerSeen.set(m.id, m.at);
    });
    const msg = await peerMessage(peerProc, (m) => m.type === 'ready' || m.type === 'error', 10000, 'the peer to be ready');
    if (msg.type === 'error') throw new Error(`peer: ${msg.error}`);
    eq(msg.userId, BOB, 'peer user');
    // With two nodes, bob's REST requests and his WebSocket go to node B.
    const server = process.env.LAYER_PEER_URL || cfg.url;
    eq(msg.server, server, "the server bob's SDK talks to");
    ok(typeof msg.socketUrl === 'string' && msg.socketUrl.startsWith(`${server.replace(/^http/, 'ws')}/websocket`), "bob's WebSocket URL", msg.socketUrl);
  });

  await check('realtime: the peer SDK receives a new message in its conversation (messages:add)', async () => {
    peerUp();
    needSocket();
    const id = newId('messages');
    const heard = peerHas(id);
    expectStatus(
      await aliceApi().post(`/conversations/${uuidOf(conv[0])}/messages`, { id, parts: [part(id, 'text/plain', `hi bob ${tag}`)] }),
      201,
      'alice (raw REST) posts a message',
    );
    await heard;
  });

  const BOB_ID = identityId(BOB);
  let rt; // alice + bob, created by alice's SDK below
  await check("realtime: a conversation alice's SDK creates appears on bob's client (conversations:add)", async () => {
    peerUp();
    needSocket();
    const c = client.createConversation({ participants: [BOB], distinct: false, metadata: { topic: `rt ${tag}` } });
    await peerCall('arm', { key: 'add', kind: 'conversationAdd', id: c.id });
    const sent = waitEvent(c, 'conversations:sent', { timeout: REALTIME_TIMEOUT_MS, failOn: ['conversations:sent-error'], what: 'conversations:sent' });
    c.send();
    await sent;
    const r = await peerCall('await', { key: 'add' });
    ok(!r.already, 'bob did not have it before', r);
    const seen = await peerCall('loadConversation', { id: c.id });
    eq(seen.participants, [ALICE, BOB].sort(), "participants on bob's client");
    eq(seen.metadata, { topic: `rt ${tag}` }, "metadata on bob's client");
    rt = c;
  });
  const needRt = () => need(rt, 'the conversation alice created');

  let aliceMsg;
  await check("realtime: alice's message.send() appears on bob's client (messages:add)", async () => {
    peerUp();
    needRt();
    const m = api.newMessage(rt, [{ mimeType: 'text/plain', body: `hello bob ${tag}` }]);
    const heard = peerHas(m.id);
    m.send();
    await heard;
    aliceMsg = m;
  });

  await check("realtime: bob's message.send() appears on alice's client (messages:add)", async () => {
    peerUp();
    needRt();
    const { id } = await peerCall('send', { conversationId: rt.id, text: `hello alice ${tag}` });
    await waitUntil(() => client.getMessage(id), [[client, 'messages:add']], { timeout: REALTIME_TIMEOUT_MS, what: `messages:add of ${id}` });
    const m = client.getMessage(id);
    eq(m.sender.userId, BOB, 'sender.userId');
    eq(api.parts(m).map((p) => p.body), [`hello alice ${tag}`], 'part bodies');
  });

  // -------------------------------------------------------------------------------------------
  // Rich content (client-wire-protocol.md §6.4): parts over 2 KiB go through POST /content and
  // the signed upload URL; the receiver downloads them from the signed download URL.

  // An image-like Blob (PNG signature, then random bytes) and a text part of 6000 characters,
  // some of them multi-byte: the SDKs declare a string part's size in characters, its upload
  // in bytes.
  const richImage = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), crypto.randomBytes(40000 - 8)]);
  const richText = `Grüße aus dem Rich-Content-Test ✓ ${tag} `.repeat(200).slice(0, 6000);
  // A Blob small enough (under 2 KiB as base64) to go inline: `encoding: base64`, no upload.
  const smallBlob = crypto.randomBytes(600);
  const sha = (buf) => crypto.createHash('sha256').update(buf).digest('hex');
  /** GET with no headers at all, as the SDKs download (client-wire-protocol.md §6.4 step 4). */
  const rawDownload = (url) => request(cfg.url, { path: url.startsWith(cfg.sdkUrl) ? cfg.url + url.slice(cfg.sdkUrl.length) : url });
  let rich; // {id, contents: [server part content objects]}
  await check('rich content: message.send() with a 40 KB image/png Blob, a 6000-character text part and a 600-byte Blob -> POST /content, PUT upload_url for the two large ones, Message.create references their contents, the small one inline (base64)', async () => {
    peerUp();
    needRt();
    const m = api.newMessage(rt, [
      { mimeType: 'image/png', body: new Blob([richImage], { type: 'image/png' }) },
      { mimeType: 'text/plain', body: richText },
      { mimeType: 'application/octet-stream', body: new Blob([smallBlob], { type: 'application/octet-stream' }) },
    ]);
    const before = syncLog.length;
    const sent = waitEvent(m, 'messages:sent', { timeout: TIMEOUT_MS, failOn: ['messages:sent-error'], what: 'messages:sent' });
    m.send();
    await sent;
    const uploads = syncLog.slice(before).filter((e) => e.method === 'POST' && /\/content$/.test(e.url || ''));
    eq(uploads.map((e) => e.event), ['sync:success', 'sync:success'], 'POST /content requests of the SDK');
    const r = expectStatus(await bob.get(`/messages/${uuidOf(m.id)}`), 200, "bob's GET of the message");
    const [inline, ...parts] = [r.body.parts[2], r.body.parts[0], r.body.parts[1]];
    eq(r.body.parts.map((p) => p.mime_type), ['image/png', 'text/plain', 'application/octet-stream'], 'mime types');
    eq([inline.encoding, inline.content == null, Buffer.from(inline.body || '', 'base64').equals(smallBlob)], ['base64', true, true], 'the small Blob inline as base64');
    eq(parts.map((p) => p.body == null), [true, true], 'no inline bodies');
    eq(parts.map((p) => p.content && p.content.size), [richImage.length, Buffer.byteLength(richText)], 'content sizes (bytes stored)');
    const sdkParts = api.parts(m).slice(0, 2);
    eq(parts.map((p) => p.content.id), sdkParts.map((p) => p._content && p._content.id), "content ids (the SDK's POST /content answers)");
    for (const p of parts) {
      ok(/^layer:\/\/\/content\/[0-9a-f-]{36}$/.test(p.content.id), 'content id', p.content.id);
      ok(Date.parse(p.content.expiration) > Date.now() + 10 * 60 * 1000, 'expiration well beyond the SDK\'s 10 minutes of leeway', p.content.expiration);
      ok(typeof p.content.refresh_url === 'string', 'refresh_url', p.content);
    }
    // The sender's SDK took the download URLs from the Message.create response.
    ok(sdkParts.every((p) => p._content.downloadUrl), "download URLs on alice's parts", sdkParts.map((p) => p._content.downloadUrl));
    // What was uploaded, byte for byte (a raw GET of bob's download URLs, no credentials).
    const image = await rawDownload(parts[0].content.download_url);
    eq([image.status, image.headers['content-type'], sha(image.buffer)], [200, 'image/png', sha(richImage)], 'the image as downloaded');
    const text = await rawDownload(parts[1].content.download_url);
    eq([text.status, text.buffer.toString('utf8')], [200, richText], 'the text as downloaded');
    rich = { id: m.id, contents: parts.map((p) => p.content) };
  });

  await check("rich content: bob's SDK gets the message; an expired download URL (isExpired) -> fetchStream() GETs refresh_url -> a fresh download_url", async () => {
    peerUp();
    need(rich, 'the rich content message');
    const r = await peerCall('refreshContent', { id: rich.id, index: 0 });
    eq(r.contentId, rich.contents[0].id, 'content id on bob\'s part');
    ok(r.expiredBefore, "the SDK's isExpired() held before the refresh");
    ok(Date.parse(r.expiration) > Date.now() + 10 * 60 * 1000, 'the new expiration (from refresh_url)', r.expiration);
    ok(!r.expiredAfter, "the SDK's isExpired() no longer holds");
    eq(r.url, r.downloadUrl, 'fetchStream hands over the refreshed download URL');
    const image = await rawDownload(r.url);
    eq([image.status, sha(image.buffer)], [200, sha(richImage)], 'the image from the refreshed URL');
  });

  await check("rich content: bob's part.fetchContent() downloads both content parts (image as a Blob, text as its string) byte for byte; the inline part is a Blob of its bytes", async () => {
    peerUp();
    need(rich, 'the rich content message');
    const r = await peerCall('fetchContent', { id: rich.id });
    eq(r.map((p) => [p.mimeType, p.fetched, p.kind]), [['image/png', true, 'blob'], ['text/plain', true, 'text'], ['application/octet-stream', false, 'blob']], 'parts (fetched: had content)');
    eq([r[0].type, r[0].size, r[0].sha256], ['image/png', richImage.length, sha(richImage)], 'the image Blob');
    eq(r[1].text, richText, 'the text');
    eq([r[2].size, r[2].sha256], [smallBlob.length, sha(smallBlob)], 'the inline Blob');
  });

  await check("realtime: bob's read receipt shows on alice's message (messages:change recipientStatus read, readStatus ALL)", async () => {
    peerUp();
    need(aliceMsg, "alice's message");
    const read = aliceSeesChange(
      'messages',
      aliceMsg.id,
      'recipientStatus',
      () => aliceMsg.recipientStatus[BOB_ID] === 'read',
      "bob's read receipt on alice's message",
    );
    await peerCall('read', { id: aliceMsg.id });
    await read();
    eq(aliceMsg.readStatus, 'ALL', 'readStatus');
  });

  await check("realtime: bob's markAllMessagesAsRead() -> alice gets the Conversation.mark_all_read operation, her messages read by bob", async () => {
    peerUp();
    needRt();
    const ms = [];
    for (let i = 0; i < 2; i++) {
      const m = await aliceSends(rt, `read them all ${i} ${tag}`);
      await peerHas(m.id);
      ms.push(m);
    }
    const operations = [];
    const onPacket = (evt) => {
      if (evt.data && evt.data.type === 'operation') operations.push(evt.data.body);
    };
    const ctx = {};
    client.socketManager.on('message', onPacket, ctx);
    try {
      // (the peer answers once bob's POST …/mark_all_read succeeded; the operation may be here already)
      await peerCall('markAllRead', { conversationId: rt.id, lastId: ms[1].id });
      await waitUntil(
        () =>
          operations.some((o) => o.method === 'Conversation.mark_all_read' && o.object && o.object.id === rt.id) &&
          ms.every((m) => m.recipientStatus[BOB_ID] === 'read'),
        [[client.socketManager, 'message'], [client, 'messages:change']],
        {
          timeout: REALTIME_TIMEOUT_MS,
          what: 'the mark_all_read operation and read statuses',
          describe: () => ({ operations, status: ms.map((m) => m.recipientStatus[BOB_ID]) }),
        },
      );
      const op = operations.find((o) => o.method === 'Conversation.mark_all_read');
      eq(op.data && op.data.identity && op.data.identity.id, BOB_ID, 'operation data.identity.id');
      ok(typeof op.data.position === 'number', 'operation data.position', op.data);
    } finally {
      client.socketManager.off(null, null, ctx);
    }
  });

  await check("realtime: alice's setMetadataProperties -> conversations:change (metadata) on bob's client", async () => {
    peerUp();
    needRt();
    const expected = { topic: `rt ${tag}`, mood: 'sunny' };
    await peerCall('arm', { key: 'meta', kind: 'conversationChange', id: rt.id, property: 'metadata', expected });
    rt.setMetadataProperties({ mood: 'sunny' });
    await peerCall('await', { key: 'meta' });
  });

  await check("realtime: bob's setMetadataProperties -> conversations:change (metadata) on alice's client", async () => {
    peerUp();
    needRt();
    const expected = { topic: `rt ${tag}`, mood: 'sunny', by: { bob: 'yes' } };
    const changed = aliceSeesChange('conversations', rt.id, 'metadata', () => isDeepStrictEqual(rt.metadata, expected), "bob's metadata patch");
    await peerCall('setMetadata', { conversationId: rt.id, props: { 'by.bob': 'yes' } });
    await changed();
  });

  await check("realtime: alice's addParticipants(carol) -> conversations:change (participants) on bob's client", async () => {
    peerUp();
    needRt();
    const expected = [ALICE, BOB, CAROL].sort();
    await peerCall('arm', { key: 'add-p', kind: 'conversationChange', id: rt.id, property: 'participants', expected });
    rt.addParticipants([CAROL]);
    await peerCall('await', { key: 'add-p' });
  });

  await check("realtime: alice's removeParticipants(carol) -> conversations:change (participants) on bob's client", async () => {
    peerUp();
    needRt();
    const expected = [ALICE, BOB].sort();
    await peerCall('arm', { key: 'remove-p', kind: 'conversationChange', id: rt.id, property: 'participants', expected });
    rt.removeParticipants([CAROL]);
    await peerCall('await', { key: 'remove-p' });
  });

  let publisher;
  await check("realtime: alice's typing publisher 'started' -> bob's typing-indicator-change (alice typing in the conversation)", async () => {
    peerUp();
    needRt();
    publisher = client.createTypingPublisher();
    publisher.setConversation(rt);
    await peerCall('arm', { key: 'typing', kind: 'typing', conversationId: rt.id, user: ALICE, state: 'started' });
    publisher.setState('started');
    const r = await peerCall('await', { key: 'typing' });
    eq(r.typing, [ALICE], 'typing users');
  });

  await check("realtime: alice's typing publisher 'finished' -> bob's typing-indicator-change (nobody typing)", async () => {
    peerUp();
    need(publisher, 'the typing publisher');
    try {
      await peerCall('arm', { key: 'typing-end', kind: 'typing', conversationId: rt.id, user: ALICE, state: 'finished' });
      publisher.setState('finished');
      const r = await peerCall('await', { key: 'typing-end' });
      eq([r.typing, r.paused], [[], []], 'typing and paused users');
    } finally {
      publisher.destroy();
    }
  });

  await check("realtime: alice's typing stops without 'finished' -> the server expires it: bob's client hears 'paused', then 'finished', before the SDK's own 6 s", async () => {
    peerUp();
    needRt();
    needSocket();
    // A bare signal (the typing publisher would repeat 'started' every 2.5 s); the servers of
    // this suite pause after 1 s and finish after 2.5 s without an update (run.sh).
    const arm = (key, state) => peerCall('arm', { key, kind: 'typing', conversationId: rt.id, user: ALICE, state });
    await arm('expiry-started', 'started');
    await arm('expiry-paused', 'paused');
    await arm('expiry-finished', 'finished');
    const start = Date.now();
    client.socketManager.sendSignal({ type: 'typing_indicator', object: { id: rt.id }, data: { action: 'started' } });
    await peerCall('await', { key: 'expiry-started' });
    const paused = await peerCall('await', { key: 'expiry-paused' });
    eq([paused.typing, paused.paused], [[], [ALICE]], 'typing and paused users once paused');
    await peerCall('await', { key: 'expiry-finished' });
    const took = Date.now() - start;
    ok(took < 6000, "finished by the server, before the SDK's own expiry", `${took} ms`);
  });

  await check("realtime: alice's client.user.setStatus('busy') -> bob's client sees her busy (pushed Identity presence update)", async () => {
    peerUp();
    needSocket();
    await peerCall('arm', { key: 'presence', kind: 'presence', user: ALICE, status: 'busy' });
    client.user.setStatus('busy');
    await peerCall('await', { key: 'presence' });
  });

  await check("realtime: alice's client.createChannel({members: [alice, bob]}).send() reaches bob's client (Channel create), then her channel message (Message create)", async () => {
    peerUp();
    needSocket();
    const channel = client.createChannel({ name: `channel ${tag}`, members: [ALICE, BOB], metadata: { by: 'sdk' } });
    ok(/^layer:\/\/\/channels\/[0-9a-f-]{36}$/.test(channel.id), 'the id the SDK chose', channel.id);
    await peerCall('arm', { key: 'channel', kind: 'channel', id: channel.id });
    const sent = waitEvent(channel, 'channels:sent', {
      timeout: REALTIME_TIMEOUT_MS,
      failOn: ['channels:sent-error'],
      what: 'channels:sent',
    });
    channel.send();
    await sent;
    const r = await peerCall('await', { key: 'channel' });
    eq(r.metadata, { by: 'sdk' }, "the channel's metadata on bob's client");
    const m = api.newMessage(channel, [{ mimeType: 'text/plain', body: `hi channel ${tag}` }]);
    const msgSent = waitEvent(m, 'messages:sent', { timeout: REALTIME_TIMEOUT_MS, failOn: ['messages:sent-error'], what: 'messages:sent' });
    m.send();
    await msgSent;
    await peerHas(m.id);
  });

  await check("realtime: bob's socket drops, alice sends 3 messages, bob reconnects -> Event.replay delivers them before its response", async () => {
    peerUp();
    needRt();
    const { lastTimestamp } = await peerCall('drop');
    ok(lastTimestamp > 0, "bob's SDK knows the timestamp of the last packet (else it skips the replay)", lastTimestamp);
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await aliceSends(rt, `while you were away ${i} ${tag}`)).id);
    ok(ids.every((id) => !peerSeen.has(id)), 'bob did not get them while disconnected');
    const { packets } = await peerCall('reconnect');
    const reqIdx = packets.findIndex((p) => p.dir === 'out' && p.packet.body && p.packet.body.method === 'Event.replay');
    const req = packets[reqIdx];
    const from = req.packet.body.data && req.packet.body.data.from_timestamp;
    ok(typeof from === 'string' && Date.parse(from) <= lastTimestamp, 'from_timestamp: the last packet before the drop', from);
    const respIdx = packets.findIndex((p) => p.dir === 'in' && p.packet.type === 'response' && p.packet.body.request_id === req.packet.body.request_id);
    eq(packets[respIdx].packet.body.success, true, 'Event.replay success');
    const replayed = packets
      .slice(reqIdx, respIdx)
      .filter((p) => p.dir === 'in' && p.packet.type === 'change' && p.packet.body.operation === 'create' && p.packet.body.object.type === 'Message')
      .map((p) => p.packet.body.object.id);
    for (const id of ids) ok(replayed.includes(id), `message ${id} replayed before the response`, replayed);
    await Promise.all(ids.map((id) => peerHas(id)));
  });

  const LATENCY_N = Number(process.env.LAYER_INTEROP_LATENCY_N || 200);
  await check(`latency: ${LATENCY_N} messages, one at a time, alice's message.send() -> bob's messages:add (measured, no threshold)`, async () => {
    peerUp();
    needRt();
    const samples = [];
    for (let i = 0; i < LATENCY_N; i++) {
      const m = api.newMessage(rt, [{ mimeType: 'text/plain', body: `latency ${i} ${tag}` }]);
      const heard = peerHas(m.id);
      const t0 = now();
      m.send();
      samples.push((await heard) - t0);
    }
    samples.sort((a, b) => a - b);
    const rank = (q) => samples[Math.min(samples.length - 1, Math.max(0, Math.ceil(q * samples.length) - 1))];
    const nodes = process.env.LAYER_PEER_URL ? 2 : 1;
    const backend = process.env.LAYER_INTEROP_BACKEND_NAME || '?';
    console.log(
      `LATENCY ${sdk.suite} backend=${backend} nodes=${nodes} n=${samples.length} ` +
        `median=${rank(0.5).toFixed(1)}ms p99=${rank(0.99).toFixed(1)}ms min=${samples[0].toFixed(1)}ms max=${samples[samples.length - 1].toFixed(1)}ms`,
    );
  });

  await check("realtime: alice's conversation.delete(all_participants) -> conversations:delete on bob's client", async () => {
    peerUp();
    needRt();
    await peerCall('arm', { key: 'delete', kind: 'conversationDelete', id: rt.id });
    await synced({ target: rt.id, method: 'DELETE' }, () => rt.delete(api.DELETION_MODE.ALL), { timeout: REALTIME_TIMEOUT_MS });
    await peerCall('await', { key: 'delete' });
  });

  // Last: this revokes bob's raw REST session too.
  await check("realtime: bob's sessions revoked on the server -> his SDK re-authenticates (challenge), the socket reopens, live messages arrive", async () => {
    peerUp();
    needSocket();
    await peerCall('arm', { key: 'reauth', kind: 'reauth', timeout: 15000 });
    expectStatus(await platform.delete(`/users/${encodeURIComponent(BOB)}/sessions`), 204, 'Platform DELETE bob sessions');
    const r = await peerCall('await', { key: 'reauth' }, 17000);
    eq(r.challenges, 1, 'challenges answered by bob');
    ok(r.newToken, 'bob has a new session token', r);
    const m = await aliceSends(await loadConversation(conv[0]), `after your re-auth ${tag}`);
    await peerHas(m.id);
  });

  // -------------------------------------------------------------------------------------------
  // Clean up

  if (peerProc && peerProc.connected) peerProc.send({ type: 'exit' });
  await Promise.all(
    [...children].map(
      (child) =>
        new Promise((resolve) => {
          const timer = setTimeout(() => {
            child.kill('SIGKILL');
            resolve();
          }, 3000);
          child.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
        }),
    ),
  );
  for (const c of clients) if (!c.isDestroyed) c.destroy();
  const code = report.finish();
  // The SDKs leave timers behind (online pings, reconnect backoff) even when destroyed.
  process.exit(code);
}

/** The next IPC message of `child` matching `filter`, within `timeout` ms. */
function peerMessage(child, filter, timeout, what = 'the peer') {
  return new Promise((resolve, reject) => {
    const onMessage = (m) => {
      if (filter(m)) {
        cleanup();
        resolve(m);
      }
    };
    const onExit = (code) => {
      cleanup();
      reject(new Error(`the peer exited (${code})`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out after ${timeout} ms waiting for ${what}`));
    }, timeout);
    function cleanup() {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    }
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

/** Wall-clock milliseconds with sub-millisecond precision, comparable between processes on one host. */
const now = () => performance.timeOrigin + performance.now();

/**
 * The forked peer: one SDK client for LAYER_PEER_USER (bob), on LAYER_INTEROP_URL (run.sh points
 * it at the second node when two run). Tells the parent 'ready'; then reports every message its
 * SDK adds ({type: 'message', id, at}: `messages:add`, with the time it fired) and answers the
 * parent's calls ({type: 'call', seq, op, args} -> {type: 'result', seq, ok, value | error}):
 *   arm {key, kind, ...}   start waiting for an SDK event now (kinds in `conditions` below)
 *   await {key}            resolve when that armed wait is satisfied (or fail on its deadline)
 *   send, read, markAllRead, setMetadata, loadConversation   act through bob's SDK
 *   drop / reconnect       close bob's WebSocket and hold the SDK's reconnect / let it reconnect
 */
async function peer(sdk) {
  const cfg = sdkConfig();
  const idp = identityProvider(cfg.idp);
  const userId = process.env.LAYER_PEER_USER;
  const profile = JSON.parse(process.env.LAYER_PEER_PROFILE || '{}');
  let api;
  let client;
  const armed = new Map(); // key -> promise
  const packets = []; // {dir: 'in'|'out', at, packet} while recording (drop..reconnect)
  let recording = false;
  let challenges = 0;
  let held = null; // the socket manager's _validateSessionBeforeReconnect while a drop holds it

  const loadConversation = async (id) => {
    const c = client.getConversation(id, true);
    if (!c.isSaved()) await waitEvent(c, 'conversations:loaded', { failOn: ['conversations:loaded-error'] });
    return c;
  };
  const participantIds = (c) => c.participants.map((p) => p.userId).sort();
  // A message on bob's client (messages:add, or already there).
  const richMessage = async (id) => {
    await waitUntil(() => client.getMessage(id), [[client, 'messages:add']], { timeout: REALTIME_TIMEOUT_MS, what: `message ${id} on bob's client` });
    return client.getMessage(id);
  };
  // part.fetchContent(callback) -> the body it resolves to; fails on content-loaded-error.
  const fetchContent = (part) =>
    new Promise((resolve, reject) => {
      const ctx = {};
      const finish = (fn, value) => {
        clearTimeout(timer);
        part.off(null, null, ctx);
        fn(value);
      };
      const timer = setTimeout(() => finish(reject, new Error(`timed out after ${TIMEOUT_MS} ms waiting for fetchContent() of ${part.id}`)), TIMEOUT_MS);
      part.on('content-loaded-error', (err) => finish(reject, new Error(`content-loaded-error: ${describeError(err)}`)), ctx);
      part.fetchContent((body) => finish(resolve, body));
    });

  // Runs `fn` (an SDK call that queues a REST request) and waits until bob's SyncManager has
  // finished a request for which `match(request)` holds; fails on sync:error, and on the
  // deadline with what is still queued.
  const synced = (match, fn, what) => {
    const sync = client.syncManager;
    const ctx = {};
    const p = new Promise((resolve, reject) => {
      const finish = (fn2, value) => {
        clearTimeout(timer);
        sync.off(null, null, ctx);
        fn2(value);
      };
      const timer = setTimeout(() => {
        const queue = (sync.queue || []).map((r) => `${r.operation} ${r.url || (r.data && r.data.method) || ''}${r.isFiring ? ' (firing)' : ''}`);
        finish(reject, new Error(`timed out after ${TIMEOUT_MS} ms waiting for ${what}; bob's sync queue: ${oneLine(queue)}`));
      }, TIMEOUT_MS);
      sync.on('sync:success', (evt) => match(evt.request) && finish(resolve), ctx);
      sync.on('sync:error', (evt) => match(evt.request) && finish(reject, new Error(`${what} failed: ${describeError(evt.error)}`)), ctx);
    });
    fn();
    return p;
  };

  // Each condition: () => promise that resolves once the SDK has done what the parent waits for.
  const conditions = {
    // A message id is in bob's client (messages:add, or already cached).
    message: ({ id, timeout }) =>
      waitUntil(() => client.getMessage(id), [[client, 'messages:add']], { timeout, what: `message ${id} on bob's client` }).then(
        () => ({}),
      ),
    // conversations:add for a conversation id.
    conversationAdd: ({ id, timeout }) =>
      client.getConversation(id) && client.getConversation(id).isSaved()
        ? Promise.resolve({ already: true })
        : waitEvent(client, 'conversations:add', {
            timeout,
            filter: (evt) => evt.conversations.some((c) => c.id === id),
            what: `conversations:add of ${id} on bob's client`,
          }).then(() => ({ already: false })),
    // conversations:change of `property` on a conversation, after which its value is `expected`
    // (metadata object; participants: sorted user ids).
    conversationChange: ({ id, property, expected, timeout }) => {
      let changed = false;
      const value = (c) => (property === 'participants' ? participantIds(c) : c[property]);
      return waitUntil(
        () => changed && isDeepStrictEqual(value(client.getConversation(id)), expected),
        [[client, 'conversations:change']],
        {
          timeout,
          what: `conversations:change (${property}) of ${id} on bob's client`,
          describe: () => ({ changed, value: client.getConversation(id) && value(client.getConversation(id)) }),
          onEvent: (evt) => {
            if (evt.target && evt.target.id === id && evt.changes.some((ch) => ch.property === property)) changed = true;
          },
        },
      ).then(() => ({}));
    },
    // conversations:delete (or the object destroyed) for a conversation id.
    conversationDelete: ({ id, timeout }) =>
      waitEvent(client, 'conversations:delete', {
        timeout,
        filter: (evt) => evt.target && evt.target.id === id,
        what: `conversations:delete of ${id} on bob's client`,
      }).then(() => ({})),
    // typing-indicator-change for a conversation: `user` typing (started), paused, or neither (finished).
    typing: ({ conversationId, user, state, timeout }) =>
      waitEvent(client, 'typing-indicator-change', {
        timeout,
        what: `typing-indicator-change (${user} ${state}) on bob's client`,
        filter: (evt) => {
          if (evt.conversationId !== conversationId) return false;
          const typing = evt.typing.map((i) => i.userId);
          const paused = evt.paused.map((i) => i.userId);
          if (state === 'started') return typing.includes(user);
          if (state === 'paused') return paused.includes(user);
          return !typing.includes(user) && !paused.includes(user);
        },
      }).then((evt) => ({ typing: evt.typing.map((i) => i.userId), paused: evt.paused.map((i) => i.userId) })),
    // A channel id is in bob's client (its Channel create change arrived); its metadata.
    channel: ({ id, timeout }) =>
      waitUntil(() => client.getChannel(id), [[client, 'channels:add']], { timeout, what: `channel ${id} on bob's client` }).then(
        () => ({ metadata: client.getChannel(id).metadata }),
      ),
    // `user`'s presence status on bob's client becomes `status` (a pushed Identity update).
    presence: ({ user, status, timeout }) => {
      const current = () => {
        const identity = client.getIdentity(identityId(user));
        return identity && identity._presence && identity._presence.status;
      };
      return waitUntil(() => current() === status, [[client, 'identities:change']], {
        timeout,
        what: `${user}'s presence ${status} on bob's client`,
        describe: () => ({ status: current() }),
      }).then(() => ({}));
    },
    // The session was revoked: the SDK re-authenticates (challenge, ready) and the socket reopens.
    reauth: async ({ timeout }) => {
      const before = challenges;
      const oldToken = client.sessionToken;
      const opts = { timeout, failOn: ['authenticated-error'] };
      await waitEvent(client, 'ready', { ...opts, what: "bob's client to be ready again" });
      if (!client.socketManager._isOpen()) {
        await waitEvent(client.socketManager, 'connected', { timeout, what: "bob's socket to reopen" });
      }
      return { challenges: challenges - before, newToken: client.sessionToken !== oldToken };
    },
  };

  const ops = {
    arm: ({ key, kind, ...args }) => {
      // The deadline covers alice's request and the delivery to bob.
      const p = conditions[kind]({ timeout: TIMEOUT_MS + REALTIME_TIMEOUT_MS, ...args });
      p.catch(() => {}); // awaited by 'await'
      armed.set(key, p);
      return {};
    },
    await: async ({ key }) => {
      const p = armed.get(key);
      armed.delete(key);
      if (!p) throw new Error(`nothing armed as ${key}`);
      return p;
    },
    // Rich content: the image part's download URL expires as far as the SDK can tell (its
    // isExpired() compares `expiration` with the clock; here the expiration is moved into the
    // past instead of waiting a day), then fetchStream() refreshes it through refresh_url.
    refreshContent: async ({ id, index }) => {
      const part = api.parts(await richMessage(id))[index];
      if (!part._content) throw new Error(`part ${index} of ${id} has no content on bob's client`);
      part._content.expiration = new Date(0);
      const expiredBefore = part._content.isExpired();
      const url = await withTimeout(new Promise((resolve) => part.fetchStream(resolve)), TIMEOUT_MS, "bob's fetchStream()");
      return {
        contentId: part._content.id,
        expiredBefore,
        expiredAfter: part._content.isExpired(),
        expiration: part._content.expiration.toISOString(),
        downloadUrl: part._content.downloadUrl,
        url,
      };
    },
    // Rich content: part.fetchContent() for each part with content (the others' bodies as
    // they are); what each body is.
    fetchContent: async ({ id }) => {
      const out = [];
      for (const part of api.parts(await richMessage(id))) {
        const fetched = Boolean(part._content);
        const body = fetched ? await fetchContent(part) : part.body;
        const described = { mimeType: part.mimeType, fetched };
        if (typeof Blob !== 'undefined' && body instanceof Blob) {
          const buf = Buffer.from(await body.arrayBuffer());
          out.push({ ...described, kind: 'blob', type: body.type, size: buf.length, sha256: crypto.createHash('sha256').update(buf).digest('hex') });
        } else if (typeof body === 'string') {
          out.push({ ...described, kind: 'text', text: body });
        } else {
          out.push({ ...described, kind: typeof body });
        }
      }
      return out;
    },
    loadConversation: async ({ id }) => {
      const c = await loadConversation(id);
      return { participants: participantIds(c), metadata: c.metadata };
    },
    send: async ({ conversationId, text }) => {
      const c = await loadConversation(conversationId);
      const m = api.newMessage(c, [{ mimeType: 'text/plain', body: text }]);
      const sent = waitEvent(m, 'messages:sent', { timeout: REALTIME_TIMEOUT_MS, failOn: ['messages:sent-error'], what: "bob's messages:sent" });
      m.send();
      await sent;
      return { id: m.id };
    },
    read: async ({ id }) => {
      const m = client.getMessage(id);
      if (!m) throw new Error(`message ${id} is not on bob's client`);
      await synced((r) => r.target === id && r.data && r.data.type === 'read', () => {
        m.isRead = true;
      }, "bob's read receipt");
      return {};
    },
    markAllRead: async ({ conversationId, lastId }) => {
      const c = await loadConversation(conversationId);
      const last = client.getMessage(lastId);
      if (!last) throw new Error(`message ${lastId} is not on bob's client`);
      await synced((r) => r.target === conversationId && /\/mark_all_read$/.test(r.url || ''), () => c.markAllMessagesAsRead(last), "bob's mark_all_read");
      return {};
    },
    setMetadata: async ({ conversationId, props }) => {
      const c = await loadConversation(conversationId);
      await synced((r) => r.target === conversationId && r.method === 'PATCH', () => c.setMetadataProperties(props), "bob's metadata PATCH");
      return {};
    },
    // Closes the socket under the SDK (as a network drop would) and holds the SDK's scheduled
    // reconnect (its session check) until 'reconnect'.
    drop: async () => {
      const sm = client.socketManager;
      if (!sm._isOpen()) throw new Error("bob's socket is not open");
      held = sm._validateSessionBeforeReconnect;
      sm._validateSessionBeforeReconnect = () => {};
      const closed = waitEvent(sm, 'disconnected', { timeout: REALTIME_TIMEOUT_MS, what: "bob's socket to close" });
      packets.length = 0;
      recording = true;
      sm._socket.close();
      await closed;
      return { lastTimestamp: sm._lastTimestamp };
    },
    // Reconnects now (what the held session check would do once it succeeds) and waits for the
    // SDK's Event.replay request and its response; returns what went over the socket meanwhile.
    reconnect: async () => {
      const sm = client.socketManager;
      clearTimeout(sm._reconnectId);
      sm._reconnectId = 0;
      if (held) sm._validateSessionBeforeReconnect = held;
      held = null;
      const replayed = waitUntil(
        () => {
          const req = packets.find((p) => p.dir === 'out' && p.packet.body && p.packet.body.method === 'Event.replay');
          return req && packets.find((p) => p.dir === 'in' && p.packet.type === 'response' && p.packet.body.request_id === req.packet.body.request_id);
        },
        [[sm, 'message']],
        { timeout: TIMEOUT_MS, what: "bob's socket to reopen, and his Event.replay and its response" },
      );
      sm.connect();
      await replayed;
      recording = false;
      return { packets: packets.map((p) => ({ dir: p.dir, packet: p.packet })) };
    },
  };

  process.on('message', async (m) => {
    if (m.type === 'exit') {
      if (client && !client.isDestroyed) client.destroy();
      process.exit(0);
    }
    if (m.type !== 'call') return;
    try {
      if (!ops[m.op]) throw new Error(`unknown peer op ${m.op}`);
      const value = await ops[m.op](m.args || {});
      process.send({ type: 'result', seq: m.seq, ok: true, value });
    } catch (err) {
      process.send({ type: 'result', seq: m.seq, ok: false, error: String((err && err.message) || err) });
    }
  });
  process.on('disconnect', () => process.exit(0));
  process.on('uncaughtException', (err) => console.error(`peer: uncaught exception (inside the SDK?): ${err && err.stack}`));
  try {
    api = sdk.load(cfg);
    client = api.newClient({ appId: cfg.appId, url: cfg.sdkUrl, websocketUrl: cfg.websocketUrl });
    client.on('challenge', (evt) => {
      challenges++;
      evt.callback(idp.token({ userId, nonce: evt.nonce, profile }));
    });
    client.on('messages:add', (evt) => {
      const at = now();
      for (const m of evt.messages) process.send({ type: 'message', id: m.id, at });
    });
    // Record the socket traffic while a drop/reconnect runs (the SDK's own send and message events).
    const sm = client.socketManager;
    const send = sm.send;
    sm.send = function (obj) {
      if (recording) packets.push({ dir: 'out', at: now(), packet: obj });
      return send.call(this, obj);
    };
    sm.on('message', (evt) => {
      if (recording) packets.push({ dir: 'in', at: now(), packet: evt.data });
    });
    const ready = waitEvent(client, 'ready', { failOn: ['connected-error', 'authenticated-error'] });
    client.connect(userId);
    await ready;
    if (!sm._isOpen()) await waitEvent(sm, 'connected', { timeout: REALTIME_TIMEOUT_MS, what: "bob's socket to open" });
    process.send({ type: 'ready', userId: client.user.userId, server: cfg.url, socketUrl: sm._socket && sm._socket.url });
  } catch (err) {
    process.send({ type: 'error', error: String((err && err.message) || err) });
  }
}

module.exports = { run };
