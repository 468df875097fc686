'use strict';
// Shared by the node suites: where the server is, the agent that redirects layer-api to it, the
// known-failures list, and a tiny sequential check runner that prints one line per check.

const fs = require('node:fs');
const https = require('node:https');
const net = require('node:net');
const path = require('node:path');
const util = require('node:util');

const DEBUG = process.env.LAYER_INTEROP_DEBUG === '1';

/** LAYER_INTEROP_URL (http://127.0.0.1:PORT), LAYER_APP_ID, LAYER_TOKEN from the environment. */
function config() {
  const missing = ['LAYER_INTEROP_URL', 'LAYER_APP_ID', 'LAYER_TOKEN'].filter((k) => !process.env[k]);
  if (missing.length) {
    console.error(`missing environment: ${missing.join(', ')} (see tests/interop/README.md)`);
    process.exit(2);
  }
  const url = new URL(process.env.LAYER_INTEROP_URL);
  if (url.protocol !== 'http:') {
    console.error('LAYER_INTEROP_URL must be an http:// URL');
    process.exit(2);
  }
  return {
    host: url.hostname,
    port: Number(url.port || 80),
    appId: process.env.LAYER_APP_ID,
    token: process.env.LAYER_TOKEN,
  };
}

function printable(chunk) {
  const text = Buffer.isBuffer(chunk) ? chunk.toString('utf8') : String(chunk);
  return text.replace(/\r\n/g, '\\r\\n\n').replace(/\n$/, '');
}

/**
 * An https.Agent (layer-api refuses anything else) whose sockets are plain TCP connections to the
 * local server. layer-api writes the request body only once the socket is `authorized` or has
 * emitted `secureConnect` (lib/request.js:84-92), so the plain socket claims to be authorized.
 * With LAYER_INTEROP_DEBUG=1 every byte sent and received is printed to stderr.
 */
class RedirectAgent extends https.Agent {
  constructor(target, options) {
    super({ keepAlive: true, ...options });
    this.target = target;
  }

  createConnection() {
    const socket = net.connect(this.target.port, this.target.host);
    socket.authorized = true;
    if (DEBUG) {
      const write = socket.write;
      socket.write = function (chunk, ...rest) {
        if (typeof chunk === 'string' || Buffer.isBuffer(chunk)) {
          process.stderr.write(`>> ${printable(chunk).replace(/\n/g, '\n>> ')}\n`);
        }
        return write.call(this, chunk, ...rest);
      };
      socket.on('data', (chunk) => {
        process.stderr.write(`<< ${printable(chunk).slice(0, 2000).replace(/\n/g, '\n<< ')}\n`);
      });
    }
    return socket;
  }
}

/** Check ids ("<suite>/<check>") listed in known_failures.txt. */
function knownFailures() {
  const file =
    process.env.LAYER_INTEROP_KNOWN_FAILURES || path.join(__dirname, 'known_failures.txt');
  return new Set(
    fs
      .readFileSync(file, 'utf8')
      .split('\n')
      .map((line) => line.replace(/#.*/, '').trim())
      .filter(Boolean),
  );
}

function oneLine(value, max = 400) {
  let text = typeof value === 'string' ? value : util.inspect(value, { depth: 6, breakLength: Infinity });
  text = text.replace(/\s*\n\s*/g, ' ');
  return text.length > max ? `${text.slice(0, max)}...` : text;
}

/**
 * Records check outcomes against the known-failures list and prints them:
 *   PASS  suite/name
 *   FAIL  suite/name: why
 *   XFAIL suite/name: why       (listed in known_failures.txt, failed: does not fail the suite)
 *   XPASS suite/name            (listed but passed: fails the suite until the line is removed)
 * and at the end a `RESULT suite passed=.. failed=.. xfail=.. xpass=.. total=..` line.
 */
class Report {
  constructor(suite) {
    this.suite = suite;
    this.known = knownFailures();
    this.counts = { passed: 0, failed: 0, xfail: 0, xpass: 0 };
    this.seen = new Set();
  }

  record(name, error) {
    const id = `${this.suite}/${name}`;
    if (this.seen.has(id)) throw new Error(`duplicate check name: ${id}`);
    this.seen.add(id);
    const known = this.known.has(id);
    if (!error && !known) {
      this.counts.passed++;
      console.log(`PASS  ${id}`);
    } else if (!error) {
      this.counts.xpass++;
      console.log(`XPASS ${id}: passes now; remove it from tests/interop/known_failures.txt`);
    } else if (known) {
      this.counts.xfail++;
      console.log(`XFAIL ${id}: ${oneLine(error.message || error)}`);
    } else {
      this.counts.failed++;
      console.log(`FAIL  ${id}: ${oneLine(error.message || error)}`);
    }
  }

  /** Prints the totals; returns the exit code (1 on a failure or an XPASS). */
  finish() {
    const c = this.counts;
    const total = c.passed + c.failed + c.xfail + c.xpass;
    console.log(
      `${this.suite}: ${c.passed}/${total} passed, ${c.failed} failed, ` +
        `${c.xfail} known failures (XFAIL), ${c.xpass} XPASS`,
    );
    console.log(
      `RESULT ${this.suite} passed=${c.passed} failed=${c.failed} xfail=${c.xfail} xpass=${c.xpass} total=${total}`,
    );
    return c.failed || c.xpass ? 1 : 0;
  }
}

/** Thrown by need(): a check that cannot run because an earlier step failed. */
class NotRun extends Error {}

function need(value, what) {
  if (value === undefined || value === null) throw new NotRun(`not run: needs ${what}`);
  return value;
}

/** Runs the checks one after the other: `await check(name, async () => {...})`. */
function runner(suite) {
  const report = new Report(suite);
  async function check(name, fn) {
    try {
      await fn();
      report.record(name, null);
    } catch (err) {
      report.record(name, err);
    }
  }
  return { check, report };
}

module.exports = { config, RedirectAgent, knownFailures, Report, runner, need, NotRun, oneLine };
