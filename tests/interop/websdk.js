'use strict';
// The Client API through npm layer-websdk 3.4.18 ("W", API 2.0) running in Node: the flows of
// sdk_flows.js with W's classes. Run by run.sh; by hand see README.md.
//
//   node websdk.js          the suite (prints one line per check and a RESULT line)
//   node websdk.js --peer   a second SDK user, forked by the suite itself

const { loadSdk } = require('./sdk_common');
const { run } = require('./sdk_flows');

const DEBUG = process.env.LAYER_INTEROP_DEBUG === '1';

run({
  suite: 'websdk',
  sdkVersion: '3.4.18',
  version: '2.0',
  load() {
    // W is pointed straight at the server (LAYER_INTEROP_URL); see web_xdk.js for why X is not.
    const layer = loadSdk(() => require('layer-websdk'), { sdkModule: 'layer-websdk' });
    const { LOG, DELETION_MODE } = layer.Constants;
    return {
      sdkVersion: layer.Client.version,
      version: '2.0',
      Query: layer.Query,
      DELETION_MODE,
      LayerError: layer.LayerError,
      // W's registry keeps one client per appId and destroys the previous one on register().
      newClient: (options) =>
        new layer.Client({ ...options, telemetryEnabled: false, logLevel: DEBUG ? LOG.INFO : LOG.NONE }),
      parts: (message) => message.parts.slice(),
      newMessage: (conversation, parts) => conversation.createMessage({ parts }),
    };
  },
}).catch((err) => {
  console.error('websdk.js crashed:', err);
  process.exit(2);
});
