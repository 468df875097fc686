'use strict';
// Shared by the Web SDK suites (websdk.js, web_xdk.js and their flows in sdk_flows.js):
//   * the Node shims that let the browser SDKs load (client-wire-protocol.md §1.3);
//   * the app's identity provider: an RSA key pair and RS256 identity tokens (spec §3.2);
//   * raw HTTP to the server: the Client API with a session token, the Platform API with the
//     Bearer token, and a raw login (nonce -> identity token -> session) for users the test
//     drives without an SDK;
//   * waiting on SDK events and conditions with deadlines (never sleeping to synchronise).
//
// Also a tiny CLI used by run.sh before the server starts:
//   node sdk_common.js keygen DIR   writes DIR/idp-private.pem (PKCS#8) and DIR/idp-public.pem (SPKI)

const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { oneLine } = require('./common');

const DEBUG = process.env.LAYER_INTEROP_DEBUG === '1';

// ---------------------------------------------------------------------------------------------
// Configuration

/**
 * The environment run.sh sets for the SDK suites: the server, the app (bare UUID; the SDKs get
 * `layer:///apps/staging/<uuid>`), its Bearer token, and the identity provider's key.
 */
function sdkConfig() {
  const names = [
    'LAYER_INTEROP_URL',
    'LAYER_APP_ID',
    'LAYER_TOKEN',
    'LAYER_IDP_PRIVATE_KEY',
    'LAYER_IDP_KEY_ID',
    'LAYER_IDP_PROVIDER_ID',
  ];
  const missing = names.filter((k) => !process.env[k]);
  if (missing.length) {
    console.error(`missing environment: ${missing.join(', ')} (see tests/interop/README.md)`);
    process.exit(2);
  }
  const url = process.env.LAYER_INTEROP_URL.replace(/\/+$/, '');
  const appUuid = process.env.LAYER_APP_ID.replace(/^layer:\/\/\/apps\/[a-z]+\//, '');
  const { hostname, port } = new URL(url);
  return {
    url,
    target: { host: hostname, port: Number(port || 80) },
    // What the SDK is told its REST base is: the server itself, or (LAYER_SDK_URL) an https URL
    // the server renders as its public URL while a redirecting agent carries the requests.
    sdkUrl: (process.env.LAYER_SDK_URL || url).replace(/\/+$/, ''),
    websocketUrl: `${url.replace(/^http/, 'ws')}/websocket`,
    appUuid,
    appId: `layer:///apps/staging/${appUuid}`,
    bearer: process.env.LAYER_TOKEN,
    idp: {
      privateKey: fs.readFileSync(process.env.LAYER_IDP_PRIVATE_KEY, 'utf8'),
      keyId: process.env.LAYER_IDP_KEY_ID,
      providerId: process.env.LAYER_IDP_PROVIDER_ID,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Node shims (client-wire-protocol.md §1.3)

let shimmed = false;

/**
 * The browser's FileReader over Node's Blob, for what the SDKs read with it (both take it from
 * `getNativeSupport('FileReader')` when there is no global): `readAsDataURL` (small Blob parts are
 * sent inline as base64), `readAsText` (a downloaded textual rich-content part becomes its body),
 * `readAsArrayBuffer`; results and `load`/`loadend`/`error` events as a browser gives them, through
 * `on<event>` handlers and `addEventListener`.
 */
class NodeFileReader {
  constructor() {
    this.readyState = 0; // EMPTY
    this.result = null;
    this.error = null;
    this.listeners = {};
  }

  addEventListener(type, fn) {
    (this.listeners[type] = this.listeners[type] || []).push(fn);
  }

  removeEventListener(type, fn) {
    this.listeners[type] = (this.listeners[type] || []).filter((f) => f !== fn);
  }

  fire(type) {
    const evt = { type, target: this };
    if (typeof this[`on${type}`] === 'function') this[`on${type}`](evt);
    for (const fn of this.listeners[type] || []) fn.call(this, evt);
  }

  read(blob, convert) {
    this.readyState = 1; // LOADING
    Promise.resolve()
      .then(() => blob.arrayBuffer())
      .then(
        (ab) => {
          this.result = convert(Buffer.from(ab));
          this.readyState = 2; // DONE
          this.fire('load');
          this.fire('loadend');
        },
        (err) => {
          this.error = err;
          this.readyState = 2;
          this.fire('error');
          this.fire('loadend');
        },
      );
  }

  readAsDataURL(blob) {
    this.read(blob, (buf) => `data:${blob.type || 'application/octet-stream'};base64,${buf.toString('base64')}`);
  }

  readAsText(blob) {
    this.read(blob, (buf) => buf.toString('utf8'));
  }

  readAsArrayBuffer(blob) {
    this.read(blob, (buf) => buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
  }
}

/**
 * A browser's XHR sends a Blob body as its bytes, with `Content-Type` = the Blob's type unless
 * the caller set one; xhr2 throws "Unsupported send() data" for Node's Blob (the SDKs upload
 * rich content with `xhr.send(blob)`, client-wire-protocol.md §6.4). Reads the Blob, then sends
 * the Buffer.
 */
function sendBlobsLikeABrowser(Xhr) {
  if (Xhr.prototype.sendsBlobs) return;
  const send = Xhr.prototype.send;
  Xhr.prototype.send = function (data) {
    if (!(typeof Blob !== 'undefined' && data instanceof Blob)) return send.call(this, data);
    const headers = this._loweredHeaders || {};
    if (data.type && !('content-type' in headers)) this.setRequestHeader('Content-Type', data.type);
    data.arrayBuffer().then(
      (ab) => send.call(this, Buffer.from(ab)),
      (err) => console.error(`reading the Blob to upload failed: ${err}`),
    );
    return undefined;
  };
  Xhr.prototype.sendsBlobs = true;
}

/**
 * Loads a browser SDK module in Node:
 *  - W's and X's utils bind `atob`/`btoa` to `window` when a global `atob` exists (Node >= 16 has
 *    one) and throw "window is not defined"; with the globals hidden they ask
 *    `global.getNativeSupport(name)` instead, the hook of their React-Native entries;
 *  - `getNativeSupport('setImmediate')` keeps their `defer` from using window.postMessage and a
 *    global `addEventListener` (X throws at load time without it);
 *  - W picks the `xhr2` package for HTTP only if `window` is undefined at load time, so `window`
 *    is set afterwards (W db-manager and typing-publisher read `window.*` at run time);
 *  - X needs global `XMLHttpRequest` and `WebSocket` (xhr2 and websocket's w3cwebsocket); W
 *    brings its own xhr2 but needs the global `WebSocket` too (see below).
 * Node has no `localStorage`, so neither SDK persists sessions; no telemetry is sent without it.
 * Rich content (client-wire-protocol.md §6.4) needs what a browser has and Node lacks: a
 * `FileReader` (NodeFileReader, given through `getNativeSupport`) and an XHR that sends a Blob
 * (sendBlobsLikeABrowser, on the xhr2 copies the SDK uses; `sdkModule` names the SDK package
 * whose own copy to patch). Node has `Blob` and `URL.createObjectURL` itself.
 */
function loadSdk(load, { browserGlobals = false, sdkModule } = {}) {
  if (shimmed) throw new Error('one SDK per process');
  shimmed = true;
  const { atob, btoa } = global;
  const native = { atob, btoa, setImmediate, FileReader: NodeFileReader, OnlineEvents: undefined };
  global.getNativeSupport = (name) => native[name];
  // The xhr2 the SDK itself requires (W has its own, older copy) and the global one.
  sendBlobsLikeABrowser(require('xhr2'));
  if (sdkModule) sendBlobsLikeABrowser(require(require.resolve('xhr2', { paths: [path.dirname(require.resolve(sdkModule))] })));
  if (browserGlobals) global.XMLHttpRequest = require('xhr2');
  // W would require websocket's w3cwebsocket itself, but without a global WebSocket its
  // SocketManager._isOpen() answers true for any socket object (lib/websockets/socket-manager.js:318)
  // and it sends on sockets that never opened ("cannot call send() while not connected").
  global.WebSocket = require('websocket').w3cwebsocket;
  delete global.atob;
  delete global.btoa;
  let sdk;
  try {
    sdk = load();
  } finally {
    global.atob = atob;
    global.btoa = btoa;
  }
  global.window = global;
  // xhr2 warns on every HEAD /ping the SDKs send (they pass a body to send()); nothing to act on.
  const warn = console.warn;
  console.warn = (...args) => {
    if (typeof args[0] === 'string' && args[0].startsWith('Discarding entity body for HEAD')) return;
    warn.apply(console, args);
  };
  return sdk;
}

// ---------------------------------------------------------------------------------------------
// Identity provider (spec §3.2: RS256, cty layer-eit;v=1, kid, iss, prn, iat, exp, nce)

function generateKeyPair(dir) {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'idp-private.pem'), privateKey, { mode: 0o600 });
  fs.writeFileSync(path.join(dir, 'idp-public.pem'), publicKey);
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** A compact JWS: base64url(header).base64url(claims).base64url(RSA-SHA256 signature). */
function signJwt(header, claims, privateKey) {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${b64url(crypto.sign('sha256', Buffer.from(input), privateKey))}`;
}

/** Layer identity tokens for this app's provider; `profile` holds display_name, avatar_url… */
function identityProvider(idp) {
  return {
    token({ userId, nonce, profile = {}, ttl = 600 }) {
      const iat = Math.floor(Date.now() / 1000);
      return signJwt(
        { typ: 'JWT', alg: 'RS256', cty: 'layer-eit;v=1', kid: idp.keyId },
        { iss: idp.providerId, prn: userId, iat, exp: iat + ttl, nce: nonce, ...profile },
        idp.privateKey,
      );
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP

const agent = new http.Agent({ keepAlive: false });

/**
 * One HTTP request to the server; resolves to {status, headers, body, text, buffer} for any
 * answer (body: parsed JSON when the response says application/json, else the text; buffer: the
 * raw bytes).
 */
function request(base, { method = 'GET', path: p, headers = {}, body }) {
  const url = new URL(p.startsWith('http') ? p : `${base}${p}`);
  const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method,
        agent,
        headers: {
          ...(payload !== undefined ? { 'content-length': Buffer.byteLength(payload) } : {}),
          ...headers,
        },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const buffer = Buffer.concat(chunks);
          const text = buffer.toString('utf8');
          let parsed = text;
          if (/^application\/json/.test(res.headers['content-type'] || '') && text) {
            try {
              parsed = JSON.parse(text);
            } catch {
              parsed = text;
            }
          }
          if (DEBUG) process.stderr.write(`raw ${method} ${url.pathname}${url.search} -> ${res.statusCode} ${oneLine(text, 600)}\n`);
          resolve({ status: res.statusCode, headers: res.headers, body: parsed, text, buffer });
        });
      },
    );
    req.setTimeout(10000, () => req.destroy(new Error(`${method} ${p}: no answer within 10 s`)));
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

const ACCEPT = (version) => `application/vnd.layer+json; version=${version}`;

/** The Client API as one user: `api.get('/conversations')`, `api.post(path, body)`, … */
function clientApi(base, version, token) {
  const call = (method, p, body, extra = {}) =>
    request(base, {
      method,
      path: p,
      body,
      headers: {
        accept: ACCEPT(version),
        'content-type': 'application/json',
        ...(token ? { authorization: `Layer session-token="${token}"` } : {}),
        ...extra,
      },
    });
  return {
    token,
    get: (p) => call('GET', p),
    post: (p, body) => call('POST', p, body),
    put: (p, body) => call('PUT', p, body),
    delete: (p) => call('DELETE', p),
    patch: (p, ops) => call('PATCH', p, ops, { 'content-type': 'application/vnd.layer-patch+json' }),
  };
}

/** The Platform API of the app (Bearer token), API version 3.0 unless told otherwise. */
function platformApi(cfg, version = '3.0') {
  const call = (method, p, body, contentType = 'application/json') =>
    request(cfg.url, {
      method,
      path: `/apps/${cfg.appUuid}${p}`,
      body,
      headers: { accept: ACCEPT(version), authorization: `Bearer ${cfg.bearer}`, 'content-type': contentType },
    });
  return {
    get: (p) => call('GET', p),
    post: (p, body) => call('POST', p, body),
    put: (p, body) => call('PUT', p, body),
    delete: (p) => call('DELETE', p),
    patch: (p, ops) => call('PATCH', p, ops, 'application/vnd.layer-patch+json'),
  };
}

/** Authenticates `userId` without an SDK (POST /nonces, identity token, POST /sessions). */
async function rawLogin(cfg, version, userId, profile) {
  const anon = clientApi(cfg.url, version);
  const nonce = await anon.post('/nonces');
  expectStatus(nonce, [200, 201], 'POST /nonces');
  const identityToken = identityProvider(cfg.idp).token({ userId, nonce: nonce.body.nonce, profile });
  const session = await anon.post('/sessions', { identity_token: identityToken, app_id: cfg.appId });
  expectStatus(session, [200, 201], 'POST /sessions');
  if (typeof session.body.session_token !== 'string') {
    throw new Error(`POST /sessions: no session_token in ${oneLine(session.body)}`);
  }
  return clientApi(cfg.url, version, session.body.session_token);
}

function expectStatus(r, expected, what) {
  const list = Array.isArray(expected) ? expected : [expected];
  if (!list.includes(r.status)) {
    throw new Error(`${what}: expected ${list.join('/')}, got ${r.status} ${oneLine(r.body, 300)}`);
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Waiting

/** Default deadline for anything the server answers locally. */
const TIMEOUT_MS = 5000;
/** Deadline for what travels over the WebSocket (a change, a signal, a replay). */
const REALTIME_TIMEOUT_MS = 3000;

/**
 * Resolves with the first `event` of an SDK object (Backbone-style on/off) for which `filter`
 * returns true; rejects after `timeout` ms. `failOn` lists events that reject at once.
 */
function waitEvent(target, event, { filter = () => true, timeout = TIMEOUT_MS, what, failOn = [] } = {}) {
  return new Promise((resolve, reject) => {
    const ctx = {};
    const done = (fn, value) => {
      clearTimeout(timer);
      target.off(null, null, ctx);
      fn(value);
    };
    const timer = setTimeout(
      () => done(reject, new Error(`timed out after ${timeout} ms waiting for ${what || event}`)),
      timeout,
    );
    target.on(
      event,
      (evt) => {
        let ok;
        try {
          ok = filter(evt);
        } catch (err) {
          return done(reject, err);
        }
        if (ok) done(resolve, evt);
      },
      ctx,
    );
    for (const bad of failOn) {
      target.on(
        bad,
        (evt) => done(reject, new Error(`${bad} while waiting for ${what || event}: ${describeError(evt)}`)),
        ctx,
      );
    }
  });
}

/**
 * Resolves once `condition()` is truthy, re-checking whenever one of `events` ([target, name]
 * pairs) fires (`onEvent(evt)` sees each such event first); rejects after `timeout` ms with the
 * last state `describe()` gives.
 */
function waitUntil(condition, events, { timeout = TIMEOUT_MS, what = 'a condition', describe, onEvent } = {}) {
  return new Promise((resolve, reject) => {
    const ctx = {};
    let timer;
    const cleanup = () => {
      clearTimeout(timer);
      for (const [target] of events) target.off(null, null, ctx);
    };
    const test = () => {
      let value;
      try {
        value = condition();
      } catch (err) {
        cleanup();
        reject(err);
        return true;
      }
      if (value) {
        cleanup();
        resolve(value);
        return true;
      }
      return false;
    };
    if (test()) return;
    timer = setTimeout(() => {
      cleanup();
      const state = describe ? `; last state: ${oneLine(describe(), 300)}` : '';
      reject(new Error(`timed out after ${timeout} ms waiting for ${what}${state}`));
    }, timeout);
    for (const [target, name] of events) {
      target.on(
        name,
        (evt) => {
          if (onEvent) onEvent(evt);
          setImmediate(test);
        },
        ctx,
      );
    }
  });
}

/** Rejects `promise` if it has not settled after `timeout` ms. */
function withTimeout(promise, timeout, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${timeout} ms waiting for ${what}`)), timeout);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** A LayerError, an SDK error event ({error}) or anything else, as one short line. */
function describeError(value) {
  const isLayerError = (e) => e && typeof e === 'object' && ('httpStatus' in e || 'code' in e);
  const err = isLayerError(value) ? value : value && value.error !== undefined ? value.error : value;
  if (isLayerError(err)) {
    return `${err.httpStatus || ''} ${err.id || ''} ${err.message || ''}`.trim() || oneLine(err, 300);
  }
  return err instanceof Error ? err.message : oneLine(err, 300);
}

module.exports = {
  sdkConfig,
  loadSdk,
  generateKeyPair,
  signJwt,
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
};

if (require.main === module) {
  const [cmd, dir] = process.argv.slice(2);
  if (cmd === 'keygen' && dir) {
    generateKeyPair(dir);
  } else {
    console.error('usage: node sdk_common.js keygen DIR');
    process.exit(2);
  }
}
