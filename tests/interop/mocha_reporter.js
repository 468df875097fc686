'use strict';
// Mocha 2.x reporter for layer-api's bundled integration specs: the interop lines
// (PASS/FAIL/XFAIL/XPASS layer-api-specs/<full title>) and the RESULT line, with
// known_failures.txt applied like in the other suites.
const Base = require('mocha/lib/reporters/base');
const { Report } = require('./common');

function InteropReporter(runner) {
  Base.call(this, runner);
  const report = new Report('layer-api-specs');
  const names = new Map(); // test -> check name
  const titles = new Map(); // full title -> how often seen
  const record = (test, err) => {
    if (names.has(test)) {
      // Mocha 2 may report a test twice (a callback that throws after done()): keep the first.
      console.log(`NOTE  ${report.suite}/${names.get(test)}: reported again: ${err ? err.message : 'pass'}`);
      return;
    }
    // blocklist.spec.js has two tests with the same full title: number the repeats.
    const title = test.fullTitle();
    const seen = (titles.get(title) || 0) + 1;
    titles.set(title, seen);
    const name = seen > 1 ? `${title} (#${seen})` : title;
    names.set(test, name);
    report.record(name, err);
  };
  runner.on('suite', (suite) => {
    if (suite.title && suite.parent && suite.parent.root) console.log(`# ${suite.title}`);
  });
  runner.on('pass', (test) => record(test, null));
  runner.on('fail', (test, err) => record(test, err || new Error('failed')));
  runner.on('end', () => report.finish());
}

module.exports = InteropReporter;
