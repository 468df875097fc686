'use strict';
// The Client API through npm @layerhq/web-xdk 4.0.6 ("X", API 3.0; its core, without the UI
// components) running in Node: the flows of sdk_flows.js with X's classes. Run by run.sh; by
// hand see README.md.
//
//   node web_xdk.js          the suite (prints one line per check and a RESULT line)
//   node web_xdk.js --peer   a second SDK user, forked by the suite itself

const { RedirectAgent } = require('./common');
const { loadSdk } = require('./sdk_common');
const { run } = require('./sdk_flows');

const DEBUG = process.env.LAYER_INTEROP_DEBUG === '1';

run({
  suite: 'web-xdk',
  sdkVersion: '4.0.6',
  version: '3.0',
  load(cfg) {
    // X 4.0.6 only treats `https://` URLs as absolute (core/models/syncable.js:82 and
    // core/sync-event.js:301 test /^http(s):\/\//, core/client-authenticator.js:1238 looks for
    // 'https://'): with an http:// server every object URL is prefixed again with the client's
    // url and PATCH/DELETE/follow go to '<url>/conversations/<id>http://…'. So X is given an
    // https:// url (LAYER_SDK_URL; run.sh starts its server with that public URL) and xhr2's
    // https agent hands each request to a plain TCP socket to the local server.
    if (!cfg.sdkUrl.startsWith('https://')) {
      throw new Error('web-xdk needs LAYER_SDK_URL=https://… (see README.md): X 4.0.6 mangles http:// object URLs');
    }
    require('xhr2').nodejsSet({ httpsAgent: new RedirectAgent(cfg.target) });
    const Layer = loadSdk(() => require('@layerhq/web-xdk/index-core'), { browserGlobals: true });
    const { LOG, DELETION_MODE } = Layer.Constants;
    return {
      sdkVersion: Layer.version,
      version: '3.0',
      Query: Layer.Core.Query,
      DELETION_MODE,
      LayerError: Layer.Core.LayerError,
      // X keeps one client (Layer.client); init() replaces it once the previous one is destroyed.
      newClient: (options) => {
        const current = Layer.client;
        if (current && !current.isDestroyed && current.appId) current.destroy();
        return Layer.init({ ...options, telemetryEnabled: false, logLevel: DEBUG ? LOG.INFO : LOG.NONE });
      },
      parts: (message) => Array.from(message.parts),
      newMessage: (conversation, parts) =>
        conversation.createMessage({ parts: parts.map((p) => new Layer.Core.MessagePart(p)) }),
    };
  },
}).catch((err) => {
  console.error('web_xdk.js crashed:', err);
  process.exit(2);
});
