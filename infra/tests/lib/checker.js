'use strict';
// The checker: loads a tree (syntax, fmt), then checks schema, references and module wiring,
// per-environment inputs, and policies. Used by bin/check.js and by the tests.
const { loadTree } = require('./model');
const { Schema } = require('./schema');
const { checkSchema } = require('./check-schema');
const { checkRefs } = require('./check-refs');
const { checkVars } = require('./check-vars');
const { checkPolicy } = require('./policy');
const hcl2json = require('@cdktf/hcl2json');
const { attr } = require('./hcl');

let sharedSchema = null;

async function check(dir, opts = {}) {
  const started = Date.now();
  const schema = sharedSchema || (sharedSchema = new Schema());
  const tree = await loadTree(dir, opts);
  tree.schema = schema;
  const stats = {
    files: tree.fileCount, modules: 0, roots: 0, resources: 0, dataSources: 0, providers: 0, arguments: 0,
    blocks: 0, references: 0, moduleCalls: 0, templates: 0, tfvars: 0, taskDefinitions: 0,
    types: new Set(), policies: [],
  };
  for (const m of tree.modules.values()) {
    stats.modules++;
    if (m.isRoot) stats.roots++;
  }
  checkSchema(tree, schema, stats);
  checkRefs(tree, schema, stats);
  checkVars(tree, stats);
  await evaluateLiterals(tree);
  checkPolicy(tree, stats, { layout: Boolean(opts.layout) });
  stats.ms = Date.now() - started;
  stats.schemaVersion = schema.version;
  return { report: tree.report, stats, tree };
}

// container_definitions = jsonencode([ ...literal list... ]): hcl2json leaves function calls as
// strings, so the argument is parsed again on its own to get its JSON form.
async function evaluateLiterals(tree) {
  for (const mod of tree.modules.values()) {
    for (const b of mod.resources.values()) {
      if (b.labels[0] !== 'aws_ecs_task_definition') continue;
      const cd = attr(b.body, 'container_definitions');
      const m = cd && /^jsonencode\(\s*(\[[\s\S]*\])\s*\)$/.exec(cd.expr.trim());
      if (!m) continue;
      try {
        const json = await hcl2json.parse('container_definitions.hcl', `v = ${m[1]}\n`);
        b.containersJson = json.v;
      } catch (e) {
        // Left undefined: the policy reports that it cannot see the containers.
      }
    }
  }
}

module.exports = { check };
