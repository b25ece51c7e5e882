'use strict';
// The checker must fail: each folder under fixtures/broken/ breaks rules on purpose, and its
// expected.txt lists exactly the errors (and "warning: " lines, the warnings) the checker must
// report, as "file:line: [check] message". Nothing more and nothing less is accepted.
// fixtures/good/ holds trees that must pass, including the policies' allowed exceptions.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const { check } = require('../lib/checker');

const root = path.join(__dirname, '..', 'fixtures');
const cases = (kind) => fs.readdirSync(path.join(root, kind)).filter((d) => fs.statSync(path.join(root, kind, d)).isDirectory()).sort();

function expected(dir) {
  const lines = fs.readFileSync(path.join(dir, 'expected.txt'), 'utf8').split('\n')
    .map((l) => l.trimEnd()).filter((l) => l && !l.startsWith('#'));
  return {
    errors: lines.filter((l) => !l.startsWith('warning: ')).sort(),
    warnings: lines.filter((l) => l.startsWith('warning: ')).map((l) => l.slice('warning: '.length)).sort(),
  };
}

test('there are broken fixtures for every kind of check', () => {
  const kinds = new Set();
  for (const c of cases('broken')) {
    for (const l of expected(path.join(root, 'broken', c)).errors) kinds.add(/\[([a-z]+)\]/.exec(l)[1]);
  }
  for (const k of ['syntax', 'fmt', 'schema', 'refs', 'modules', 'providers', 'versions', 'tfvars', 'policy']) {
    assert.ok(kinds.has(k), `no broken fixture expects a [${k}] error`);
  }
});

for (const c of cases('broken')) {
  test(`broken/${c} fails with exactly the expected errors`, async () => {
    const dir = path.join(root, 'broken', c);
    const want = expected(dir);
    assert.ok(want.errors.length > 0, 'expected.txt lists no error');
    const { report } = await check(dir);
    assert.deepEqual(report.errors.map((e) => e.text).sort(), want.errors);
    assert.deepEqual(report.warnings.map((w) => w.text).sort(), want.warnings);
  });
}

for (const c of cases('good')) {
  test(`good/${c} passes`, async () => {
    const { report } = await check(path.join(root, 'good', c));
    assert.deepEqual(report.errors.map((e) => e.text), []);
    assert.deepEqual(report.warnings.map((w) => w.text), []);
  });
}
