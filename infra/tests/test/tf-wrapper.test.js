'use strict';
// infra/bin/tf, run against a stand-in terraform that prints its arguments and TF_DATA_DIR.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const infra = path.resolve(__dirname, '..', '..');
const tf = path.join(infra, 'bin', 'tf');
const fake = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tf-')), 'terraform');
fs.writeFileSync(fake, '#!/bin/sh\necho "TF_DATA_DIR=$TF_DATA_DIR"\nfor a in "$@"; do echo "$a"; done\n', { mode: 0o755 });
const run = (...args) => execFileSync(tf, args, { env: { ...process.env, TERRAFORM: fake }, encoding: 'utf8' }).trim().split('\n');

test('init: the environment backend file and a key per stack', () => {
  assert.deepEqual(run('dev', 'provider-orders', 'init'), [
    `TF_DATA_DIR=${infra}/.terraform/dev/provider-orders`,
    `-chdir=${infra}/roots/provider`, 'init', '-reconfigure',
    `-backend-config=${infra}/environments/dev/backend.hcl`, '-backend-config=key=provider-orders/terraform.tfstate',
  ]);
});

test('plan: common and stack variable files, extra arguments passed on', () => {
  assert.deepEqual(run('prod', 'shared-services', 'plan', '-out=x.tfplan').slice(1), [
    `-chdir=${infra}/roots/shared-services`, 'plan',
    `-var-file=${infra}/environments/prod/common.tfvars`, `-var-file=${infra}/environments/prod/shared-services.tfvars`,
    '-out=x.tfplan',
  ]);
});

test('unknown environment or stack is refused', () => {
  const r = spawnSync(tf, ['qa', 'networking', 'plan'], { env: { ...process.env, TERRAFORM: fake }, encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /no environment qa/);
  const s = spawnSync(tf, ['dev', 'consumer-nope', 'plan'], { env: { ...process.env, TERRAFORM: fake }, encoding: 'utf8' });
  assert.equal(s.status, 2);
  assert.match(s.stderr, /no variables for consumer-nope/);
});
