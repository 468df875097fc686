'use strict';
// `mocha --require` file for layer-api's own integration specs, which build their clients without
// an agent and hard-code api.layer.com: Node reads https.globalAgent on every request, so
// replacing it sends their requests to the local server (platform-clients.md §1).
const https = require('node:https');
const { config, RedirectAgent } = require('./common');

https.globalAgent = new RedirectAgent(config());
