'use strict';
// Checks resource, data source and provider blocks against the hashicorp/aws schema read from the
// generated bindings (schema.js): that the type exists, every argument and nested block name is
// one the type has, blocks are written as blocks and arguments as arguments, blocks that allow one
// appear once, and required arguments and blocks are present (in nested blocks too). Also checks
// the terraform block (pinned versions, the S3 backend) and Terraform's own blocks (variable,
// output, module, lifecycle, dynamic).
const { attr, blocks } = require('./hcl');

const RESOURCE_META_ATTRS = new Set(['count', 'for_each', 'provider', 'depends_on']);
const RESOURCE_META_BLOCKS = new Set(['lifecycle', 'provisioner', 'connection']);
const LIFECYCLE_ATTRS = new Set(['create_before_destroy', 'prevent_destroy', 'ignore_changes', 'replace_triggered_by']);
const LIFECYCLE_BLOCKS = new Set(['precondition', 'postcondition']);

// Arguments of Terraform's S3 backend (Terraform 1.10+), for backend blocks and backend.hcl files.
const S3_BACKEND_ARGS = new Set([
  'bucket', 'key', 'region', 'encrypt', 'use_lockfile', 'dynamodb_table', 'dynamodb_endpoint', 'kms_key_id',
  'acl', 'workspace_key_prefix', 'profile', 'shared_config_files', 'shared_credentials_files', 'access_key',
  'secret_key', 'token', 'assume_role', 'assume_role_with_web_identity', 'endpoints', 'skip_credentials_validation',
  'skip_region_validation', 'skip_requesting_account_id', 'skip_metadata_api_check', 'skip_s3_checksum',
  'use_path_style', 'sts_region', 'max_retries', 'retry_mode', 'allowed_account_ids', 'forbidden_account_ids',
  'sse_customer_key', 'custom_ca_bundle', 'ec2_metadata_service_endpoint', 'ec2_metadata_service_endpoint_mode',
  'http_proxy', 'https_proxy', 'no_proxy', 'insecure', 'use_dualstack_endpoint', 'use_fips_endpoint',
]);

const KNOWN_BLOCK_ATTRS = {
  variable: { attrs: ['description', 'type', 'default', 'sensitive', 'nullable', 'ephemeral'], blocks: ['validation'] },
  output: { attrs: ['description', 'value', 'sensitive', 'depends_on', 'ephemeral'], blocks: ['precondition'], required: ['value'] },
  validation: { attrs: ['condition', 'error_message'], required: ['condition', 'error_message'] },
  precondition: { attrs: ['condition', 'error_message'], required: ['condition', 'error_message'] },
};

function checkSimpleBlock(block, spec, report, what) {
  for (const it of block.body) {
    if (it.kind === 'attr' && !spec.attrs.includes(it.name)) {
      report.error('schema', it.file, it.line, `${what}: unsupported argument ${JSON.stringify(it.name)}`);
    } else if (it.kind === 'block') {
      if (!(spec.blocks || []).includes(it.type)) {
        report.error('schema', it.file, it.line, `${what}: unsupported block ${JSON.stringify(it.type)}`);
      } else if (KNOWN_BLOCK_ATTRS[it.type]) {
        checkSimpleBlock(it, KNOWN_BLOCK_ATTRS[it.type], report, `${what} ${it.type}`);
      }
    }
  }
  for (const r of spec.required || []) {
    if (!attr(block.body, r)) report.error('schema', block.file, block.line, `${what}: missing required argument ${JSON.stringify(r)}`);
  }
}

function checkLifecycle(block, report, what) {
  for (const it of block.body) {
    if (it.kind === 'attr' && !LIFECYCLE_ATTRS.has(it.name)) {
      report.error('schema', it.file, it.line, `${what} lifecycle: unsupported argument ${JSON.stringify(it.name)}`);
    } else if (it.kind === 'block') {
      if (!LIFECYCLE_BLOCKS.has(it.type)) report.error('schema', it.file, it.line, `${what} lifecycle: unsupported block ${JSON.stringify(it.type)}`);
      else checkSimpleBlock(it, KNOWN_BLOCK_ATTRS.precondition, report, `${what} lifecycle ${it.type}`);
    }
  }
}

// Checks a body against a schema node { attributes: { name: { required, isBlock, single, nested } } }.
function checkBody(body, node, report, what, top, stats) {
  const seenBlocks = {};
  const present = new Set();
  for (const it of body) {
    if (it.kind === 'attr') {
      if (top && RESOURCE_META_ATTRS.has(it.name)) continue;
      const a = node.attributes[it.name];
      if (!a) {
        const computed = top && top.readable && top.readable.has(it.name);
        report.error('schema', it.file, it.line, `${what}: unsupported argument ${JSON.stringify(it.name)}${computed ? ' (computed by the provider; it cannot be set)' : suggest(it.name, node)}`);
        continue;
      }
      if (a.isBlock) {
        report.error('schema', it.file, it.line, `${what}: ${JSON.stringify(it.name)} is a block; write ${it.name} { ... }, not ${it.name} = ...`);
        continue;
      }
      present.add(it.name);
      stats.arguments++;
      continue;
    }
    // Blocks.
    if (top && RESOURCE_META_BLOCKS.has(it.type)) {
      if (it.type === 'lifecycle') checkLifecycle(it, report, what);
      continue;
    }
    if (it.type === 'dynamic') {
      const name = it.labels[0];
      const a = node.attributes[name];
      if (!a || !a.isBlock) {
        report.error('schema', it.file, it.line, `${what}: dynamic ${JSON.stringify(name)}: ${a ? 'is an argument, not a block' : 'no such block'}${a ? '' : suggest(name, node)}`);
        continue;
      }
      for (const d of it.body) {
        if (d.kind === 'attr' && !['for_each', 'iterator', 'labels'].includes(d.name)) {
          report.error('schema', d.file, d.line, `${what}: dynamic ${JSON.stringify(name)}: unsupported argument ${JSON.stringify(d.name)}`);
        } else if (d.kind === 'block' && d.type !== 'content') {
          report.error('schema', d.file, d.line, `${what}: dynamic ${JSON.stringify(name)}: unsupported block ${JSON.stringify(d.type)}`);
        }
      }
      if (!attr(it.body, 'for_each')) report.error('schema', it.file, it.line, `${what}: dynamic ${JSON.stringify(name)}: missing required argument "for_each"`);
      const contents = blocks(it.body, 'content');
      if (contents.length !== 1) report.error('schema', it.file, it.line, `${what}: dynamic ${JSON.stringify(name)} needs exactly one content block`);
      for (const c of contents) checkBody(withLocation(c.body, c), a.nested, report, `${what} ${name}`, false, stats);
      present.add(name);
      seenBlocks[name] = (seenBlocks[name] || 0) + 2; // a dynamic block may expand to any count
      stats.blocks++;
      continue;
    }
    const a = node.attributes[it.type];
    if (!a) {
      report.error('schema', it.file, it.line, `${what}: unsupported block ${JSON.stringify(it.type)}${suggest(it.type, node)}`);
      continue;
    }
    if (!a.isBlock) {
      report.error('schema', it.file, it.line, `${what}: ${JSON.stringify(it.type)} is an argument, not a block; write ${it.type} = ${a.nested ? (a.single ? '{ ... }' : '[{ ... }]') : '...'}`);
      continue;
    }
    if (it.labels.length) report.error('schema', it.file, it.line, `${what}: block ${JSON.stringify(it.type)} takes no labels`);
    seenBlocks[it.type] = (seenBlocks[it.type] || 0) + 1;
    if (a.single && seenBlocks[it.type] === 2) {
      report.error('schema', it.file, it.line, `${what}: at most one ${JSON.stringify(it.type)} block is allowed`);
    }
    present.add(it.type);
    stats.blocks++;
    checkBody(withLocation(it.body, it), a.nested, report, `${what} ${it.type}`, false, stats);
  }
  for (const [name, a] of Object.entries(node.attributes)) {
    if (a.required && !present.has(name)) {
      const first = body[0];
      report.error('schema', body.file || (first && first.file) || what.file, body.line || 0,
        `${what}: missing required ${a.isBlock ? 'block' : 'argument'} ${JSON.stringify(name)}`);
    }
  }
}

// A "did you mean" for misspelt names.
function suggest(name, node) {
  let best = null;
  let bestD = 3;
  for (const cand of Object.keys(node.attributes)) {
    const d = editDistance(name, cand);
    if (d < bestD) { best = cand; bestD = d; }
  }
  return best ? ` (did you mean ${JSON.stringify(best)}?)` : '';
}

function editDistance(a, b) {
  const dp = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) dp[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      dp[i][j] = Math.min(dp[i - 1][j] + 1, dp[i][j - 1] + 1, dp[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return dp[a.length][b.length];
}

function withLocation(body, block) {
  // Required-argument errors point at the block's header line.
  const b = body.slice();
  b.file = block.file;
  b.line = block.line;
  return b;
}

function versionAdmits(constraint, version) {
  // Supports the forms used here: "= X", "X", ">= X", ">= X, < Y", "~> X.Y".
  const cmp = (a, b) => {
    const pa = a.split('.').map(Number);
    const pb = b.split('.').map(Number);
    for (let i = 0; i < 3; i++) if ((pa[i] || 0) !== (pb[i] || 0)) return (pa[i] || 0) - (pb[i] || 0);
    return 0;
  };
  return constraint.split(',').map((s) => s.trim()).every((c) => {
    const m = /^(=|!=|>=|<=|>|<|~>)?\s*([0-9.]+)$/.exec(c);
    if (!m) return false;
    const op = m[1] || '=';
    const d = cmp(version, m[2]);
    switch (op) {
      case '=': return d === 0;
      case '!=': return d !== 0;
      case '>=': return d >= 0;
      case '<=': return d <= 0;
      case '>': return d > 0;
      case '<': return d < 0;
      case '~>': {
        const parts = m[2].split('.');
        const upper = parts.length > 1 ? [...parts.slice(0, -2), Number(parts[parts.length - 2]) + 1].join('.') : String(Number(parts[0]) + 1);
        return d >= 0 && cmp(version, upper) < 0;
      }
      default: return false;
    }
  });
}

function checkTerraformBlocks(mod, report, schema) {
  const awsVersion = schema.version.aws;
  const tb = mod.terraform;
  const where = mod.files.find((f) => f.endsWith('versions.tf')) || mod.files[0];
  if (tb.length === 0) {
    report.error('versions', where, 0, 'no terraform block: pin required_version (and the aws provider when the module uses it) in versions.tf');
    return { configurationAliases: [], awsRequired: false, backend: null };
  }
  let configurationAliases = [];
  let awsRequired = false;
  let backend = null;
  let requiredVersion = null;
  for (const t of tb) {
    for (const it of t.body) {
      if (it.kind === 'attr') {
        if (it.name === 'required_version') requiredVersion = it;
        else report.error('versions', it.file, it.line, `terraform block: unsupported argument ${JSON.stringify(it.name)}`);
        continue;
      }
      if (it.type === 'required_providers') {
        for (const p of it.body) {
          if (p.kind !== 'attr') continue;
          if (p.name !== 'aws') {
            report.error('versions', p.file, p.line, `provider ${JSON.stringify(p.name)} is not one this checker has a schema for (only hashicorp/aws)`);
            continue;
          }
          awsRequired = true;
          const src = /source\s*=\s*"([^"]+)"/.exec(p.expr);
          const ver = /version\s*=\s*"([^"]+)"/.exec(p.expr);
          const ca = /configuration_aliases\s*=\s*\[([^\]]*)\]/.exec(p.expr);
          if (!src || src[1] !== 'hashicorp/aws') report.error('versions', p.file, p.line, 'aws provider: source must be "hashicorp/aws"');
          if (!ver) {
            report.error('versions', p.file, p.line, 'aws provider: no version constraint');
          } else if (mod.isRoot && !/^=?\s*[0-9]+\.[0-9]+\.[0-9]+$/.test(ver[1].trim())) {
            report.error('versions', p.file, p.line, `aws provider: a root pins an exact version (${JSON.stringify(awsVersion)}), not ${JSON.stringify(ver[1])}`);
          } else if (!versionAdmits(ver[1], awsVersion)) {
            report.error('versions', p.file, p.line, `aws provider: ${JSON.stringify(ver[1])} does not admit ${awsVersion}, the version the schema bindings (@cdktn/provider-aws ${schema.version.bindings}) were generated from`);
          }
          if (ca) configurationAliases = ca[1].split(',').map((s) => s.trim()).filter(Boolean);
        }
      } else if (it.type === 'backend') {
        backend = it;
        if (it.labels[0] !== 's3') report.error('versions', it.file, it.line, `backend ${JSON.stringify(it.labels[0])}: the layout keeps state in the S3 backend`);
        for (const a of it.body) {
          if (a.kind === 'attr' && !S3_BACKEND_ARGS.has(a.name)) report.error('schema', a.file, a.line, `backend "s3": unsupported argument ${JSON.stringify(a.name)}`);
        }
      } else if (!['cloud', 'provider_meta'].includes(it.type)) {
        report.error('versions', it.file, it.line, `terraform block: unsupported block ${JSON.stringify(it.type)}`);
      }
    }
  }
  if (!requiredVersion) report.error('versions', where, 0, 'terraform block: no required_version');
  return { configurationAliases, awsRequired, backend };
}

function checkSchema(tree, schema, stats) {
  const { report } = tree;
  for (const mod of tree.modules.values()) {
    if (mod.broken) continue;
    mod.tf = checkTerraformBlocks(mod, report, schema);
    for (const [addr, b] of mod.resources) checkTyped(b, 'resource', addr, schema, report, stats);
    for (const [addr, b] of mod.data) checkTyped(b, 'data', `data.${addr}`, schema, report, stats);
    for (const p of mod.providers) {
      if (p.labels[0] !== 'aws') {
        report.error('schema', p.file, p.line, `provider ${JSON.stringify(p.labels[0])}: no schema (only hashicorp/aws)`);
        continue;
      }
      const s = schema.get('provider', 'aws');
      checkBody(withLocation(p.body.filter((x) => !(x.kind === 'attr' && x.name === 'version')), p), s.root, report, 'provider "aws"', false, stats);
      stats.providers++;
    }
    for (const v of mod.variables.values()) checkSimpleBlock(v, KNOWN_BLOCK_ATTRS.variable, report, `variable ${JSON.stringify(v.labels[0])}`);
    for (const o of mod.outputs.values()) checkSimpleBlock(o, KNOWN_BLOCK_ATTRS.output, report, `output ${JSON.stringify(o.labels[0])}`);
  }
}

function checkTyped(b, kind, addr, schema, report, stats) {
  const type = b.labels[0];
  const s = schema.get(kind, type);
  if (!s) {
    report.error('schema', b.file, b.line, `${addr}: hashicorp/aws ${schema.version.aws} has no ${kind === 'data' ? 'data source' : 'resource type'} ${JSON.stringify(type)}`);
    return;
  }
  stats.types.add(`${kind}:${type}`);
  stats[kind === 'data' ? 'dataSources' : 'resources']++;
  checkBody(withLocation(b.body, b), s.root, report, addr, { readable: s.readable }, stats);
  if (attr(b.body, 'count') && attr(b.body, 'for_each')) {
    report.error('schema', b.file, b.line, `${addr}: count and for_each cannot both be set`);
  }
}

module.exports = { checkSchema, S3_BACKEND_ARGS, versionAdmits, editDistance };
