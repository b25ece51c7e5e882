'use strict';
// Policy tests over the parsed layout. Values are read from hcl2json's JSON form and followed
// through var.X (its default, what every caller passes, and, in a root, every environment's
// tfvars), local.X and each.value; what cannot be followed statically is "unknown", and a policy
// that needs a value it cannot see fails rather than passes.
const path = require('path');
const { attr, blocks } = require('./hcl');
const { jsonOf } = require('./model');
const { findRefs } = require('./refs');

const UNKNOWN = Symbol('unknown');
const OPEN_CIDRS = new Set(['0.0.0.0/0', '::/0']);

// Resource types the reference layouts call for; the real tree must hold each at least once.
const LAYOUT_TYPES = [
  'aws_vpc', 'aws_subnet', 'aws_nat_gateway', 'aws_route_table', 'aws_flow_log', 'aws_ec2_transit_gateway',
  'aws_ec2_transit_gateway_route_table_propagation', 'aws_ram_resource_share', 'aws_ram_principal_association',
  'aws_vpc_endpoint', 'aws_cloudtrail', 'aws_s3_bucket_versioning', 'aws_s3_bucket_policy',
  'aws_config_configuration_recorder', 'aws_config_delivery_channel', 'aws_ecr_repository',
  'aws_ecr_repository_policy', 'aws_acmpca_certificate_authority', 'aws_ecs_cluster', 'aws_ecs_task_definition',
  'aws_ecs_service', 'aws_lb', 'aws_vpc_endpoint_service', 'aws_vpc_endpoint_connection_accepter',
  'aws_vpclattice_service', 'aws_vpclattice_listener', 'aws_vpclattice_target_group', 'aws_vpclattice_auth_policy',
  'aws_vpclattice_service_network', 'aws_vpclattice_service_network_service_association',
  'aws_vpclattice_service_network_vpc_association', 'aws_acm_certificate', 'aws_route53_zone', 'aws_route53_record',
  'aws_ssm_parameter', 'aws_api_gateway_rest_api', 'aws_lambda_function', 'aws_dynamodb_table',
];

class Values {
  constructor(tree) {
    this.tree = tree;
    this.tfvars = tree.others.filter((o) => o.file.endsWith('.tfvars'));
  }

  // All the values an expression may take: an array of JSON values, UNKNOWN among them when some
  // path cannot be followed. ctx: { mod, block (JSON of the enclosing resource, for each.value) }.
  of(v, ctx, depth = 0) {
    if (depth > 8) return [UNKNOWN];
    if (typeof v !== 'string') return [v];
    const m = /^\$\{([\s\S]+)\}$/.exec(v);
    if (!m || m[1].includes('${')) return v.includes('${') ? [UNKNOWN] : [v];
    let e = m[1].trim();
    const wrap = /^(toset|tolist|distinct)\(([\s\S]+)\)$/.exec(e);
    if (wrap) e = wrap[2].trim();
    let r = /^var\.([A-Za-z0-9_-]+)$/.exec(e);
    if (r) return this.variable(ctx.mod, r[1], depth);
    r = /^local\.([A-Za-z0-9_-]+)$/.exec(e);
    if (r) {
      const l = jsonOf(ctx.mod, 'locals', r[1]);
      return l === undefined ? [UNKNOWN] : this.of(l, ctx, depth + 1);
    }
    if (e === 'each.value' && ctx.block && ctx.block.for_each !== undefined) {
      const out = [];
      for (const coll of this.of(ctx.block.for_each, ctx, depth + 1)) {
        if (coll === UNKNOWN) out.push(UNKNOWN);
        else if (Array.isArray(coll)) out.push(...coll.map((x) => this.of(x, ctx, depth + 1)).flat());
        else if (coll && typeof coll === 'object') out.push(...Object.values(coll).map((x) => this.of(x, ctx, depth + 1)).flat());
        else out.push(UNKNOWN);
      }
      return out;
    }
    if (/^(true|false|null|-?[0-9.]+)$/.test(e)) return [JSON.parse(e)];
    return [UNKNOWN];
  }

  variable(mod, name, depth) {
    const out = [];
    const v = jsonOf(mod, 'variable', name);
    if (v && 'default' in v) out.push(...this.of(v.default, { mod }, depth + 1));
    for (const c of mod.callers) {
      const call = jsonOf(c.mod, 'module', c.name);
      if (call && name in call) out.push(...this.of(call[name], { mod: c.mod }, depth + 1));
    }
    if (mod.isRoot) {
      const rootName = path.basename(mod.dir);
      for (const t of this.tfvars) {
        const stem = path.basename(t.file).replace(/\.tfvars$/, '');
        if ((stem === 'common' || stem === rootName || stem.startsWith(`${rootName}-`)) && name in t.json) out.push(t.json[name]);
      }
    }
    return out.length ? out : [UNKNOWN];
  }

  // Every possible value is exactly `want`.
  all(v, ctx, want) {
    const vals = this.of(v, ctx);
    return vals.length > 0 && vals.every((x) => x === want);
  }

  // Flattened strings of a list-valued expression; UNKNOWN when any element cannot be seen.
  strings(v, ctx) {
    const out = [];
    for (const x of this.of(v, ctx)) {
      if (x === UNKNOWN) out.push(UNKNOWN);
      else if (Array.isArray(x)) for (const y of x) out.push(...this.of(y, ctx));
      else out.push(x);
    }
    return out;
  }
}

function refTo(v, type) {
  // "${aws_s3_bucket.logs.id}" -> "logs"
  const m = typeof v === 'string' && new RegExp(`\\$\\{${type}\\.([A-Za-z0-9_-]+)(\\[[^\\]]*\\])?\\.[a-z_]+\\}`).exec(v);
  return m ? m[1] : null;
}

class Policy {
  constructor(tree, stats, opts) {
    this.tree = tree;
    this.report = tree.report;
    this.values = new Values(tree);
    this.stats = stats;
    this.opts = opts;
  }

  fail(name, b, what, msg) {
    const a = what ? findAttr(b.body, what) : null;
    this.report.error('policy', b.file, a ? a.line : b.line, `${name}: ${msg}`);
  }

  resources(type) {
    const out = [];
    for (const mod of this.tree.modules.values()) {
      if (mod.broken) continue;
      for (const [addr, b] of mod.resources) {
        if (b.labels[0] !== type) continue;
        out.push({ mod, addr, b, json: jsonOf(mod, 'resource', b.labels[0], b.labels[1]) || {}, name: b.labels[1] });
      }
    }
    return out;
  }

  run() {
    const checks = [
      ['endpoint services restrict principals and require acceptance', () => this.endpointServices()],
      ['CloudTrail is organization-wide, multi-region, validated, into a hardened bucket', () => this.trails()],
      ['every task definition runs the outrigger sidecar; apps depend on it being HEALTHY', () => this.taskDefinitions()],
      ['no security group opens 0.0.0.0/0 ingress except on public load balancers', () => this.openIngress()],
      ['roots: providers assume a role, set default_tags; S3 backend', () => this.roots()],
      ['S3 buckets block public access, are encrypted and versioned', () => this.buckets()],
      ['ECR repositories scan on push and keep tags immutable', () => this.ecr()],
      ['Lattice services use IAM auth, an auth policy, HTTPS with a custom domain certificate', () => this.lattice()],
      ['ECS clusters have Container Insights; services run on Fargate in private subnets', () => this.ecs()],
      ['KMS keys rotate; log groups have a retention', () => this.hygiene()],
      ['every resource that takes tags sets them', () => this.tags()],
    ];
    if (this.opts.layout) checks.push(['the layout holds every resource type the reference layouts call for', () => this.layout()]);
    for (const [name, fn] of checks) {
      const before = this.report.errors.length;
      fn();
      this.stats.policies.push({ name, ok: this.report.errors.length === before });
    }
  }

  endpointServices() {
    const allowedPrincipalResources = this.resources('aws_vpc_endpoint_service_allowed_principal');
    for (const r of this.resources('aws_vpc_endpoint_service')) {
      const ctx = { mod: r.mod, block: r.json };
      if (!this.values.all(r.json.acceptance_required, ctx, true)) {
        this.fail(r.addr, r.b, 'acceptance_required', 'acceptance_required must be true (every connection accepted explicitly)');
      }
      const extra = allowedPrincipalResources.filter((p) => p.mod === r.mod && refTo(p.json.vpc_endpoint_service_id, 'aws_vpc_endpoint_service') === r.name);
      if (r.json.allowed_principals === undefined && extra.length === 0) {
        this.fail(r.addr, r.b, null, 'no allowed_principals: name the consumer accounts');
        continue;
      }
      const principals = [
        ...(r.json.allowed_principals === undefined ? [] : this.values.strings(r.json.allowed_principals, ctx)),
        ...extra.flatMap((p) => this.values.strings(p.json.principal_arn, { mod: p.mod, block: p.json })),
      ];
      if (principals.some((p) => p === '*')) {
        this.fail(r.addr, r.b, 'allowed_principals', 'allowed_principals contains "*": any AWS account could connect');
      } else if (principals.includes(UNKNOWN) && !this.guardedVariable(r.mod, r.json.allowed_principals, '"*"')) {
        this.fail(r.addr, r.b, 'allowed_principals', 'allowed_principals cannot be shown to exclude "*": use literals, or a variable whose validation rejects "*"');
      }
    }
  }

  // An expression built only from variables whose validation conditions mention the given text
  // (e.g. a rejection of "*").
  guardedVariable(mod, v, text) {
    const m = typeof v === 'string' && /^\$\{([\s\S]+)\}$/.exec(v);
    if (!m) return false;
    const refs = findRefs(m[1]);
    return refs.length > 0 && refs.every((r) => {
      if (r.root !== 'var') return false;
      const vb = mod.variables.get(r.parts[0]);
      return Boolean(vb && blocks(vb.body, 'validation').some((val) => (attr(val.body, 'condition') || { expr: '' }).expr.includes(text)));
    });
  }

  trails() {
    for (const r of this.resources('aws_cloudtrail')) {
      const ctx = { mod: r.mod, block: r.json };
      const want = {
        is_multi_region_trail: 'the trail must be multi-region',
        enable_log_file_validation: 'log file validation must be on',
        is_organization_trail: 'the trail must cover the organization',
      };
      for (const [k, msg] of Object.entries(want)) {
        if (!this.values.all(r.json[k], ctx, true)) this.fail(r.addr, r.b, k, `${k} must be true: ${msg}`);
      }
      if (r.json.include_global_service_events === false) this.fail(r.addr, r.b, 'include_global_service_events', 'global service events (IAM, STS) must be recorded');
      if (r.json.kms_key_id === undefined) this.fail(r.addr, r.b, null, 'logs must be encrypted with a KMS key (kms_key_id)');
      const bucket = refTo(r.json.s3_bucket_name, 'aws_s3_bucket');
      if (!bucket) {
        this.fail(r.addr, r.b, 's3_bucket_name', 's3_bucket_name must refer to an aws_s3_bucket of the same module, so that its hardening can be checked');
        continue;
      }
      const needs = ['aws_s3_bucket_versioning', 'aws_s3_bucket_server_side_encryption_configuration', 'aws_s3_bucket_policy', 'aws_s3_bucket_public_access_block'];
      for (const t of needs) {
        if (!this.resources(t).some((x) => x.mod === r.mod && refTo(x.json.bucket, 'aws_s3_bucket') === bucket)) {
          this.fail(r.addr, r.b, 's3_bucket_name', `the trail's bucket aws_s3_bucket.${bucket} has no ${t}`);
        }
      }
    }
  }

  taskDefinitions() {
    for (const r of this.resources('aws_ecs_task_definition')) {
      this.stats.taskDefinitions++;
      const ctx = { mod: r.mod, block: r.json };
      const cd = r.json.container_definitions;
      let containers = Array.isArray(r.b.containersJson) ? r.b.containersJson : null;
      const m = typeof cd === 'string' && /^\$\{jsonencode\(([\s\S]+)\)\}$/.exec(cd);
      if (containers) {
        // a literal list, evaluated by the checker
      } else if (m) {
        const vals = this.values.of(`\${${m[1].trim()}}`, ctx);
        if (vals.length === 1 && Array.isArray(vals[0])) containers = vals[0];
      } else if (typeof cd === 'string' && !cd.includes('${')) {
        try { containers = JSON.parse(cd); } catch (e) { containers = null; }
      }
      if (!Array.isArray(containers)) {
        this.fail(r.addr, r.b, 'container_definitions', 'container_definitions must be jsonencode(<local or literal list>) so that the containers can be checked');
        continue;
      }
      const sidecar = containers.find((c) => c && c.name === 'outrigger');
      if (!sidecar) {
        this.fail(r.addr, r.b, 'container_definitions', 'no container named "outrigger": every task runs the outrigger sidecar');
        continue;
      }
      const img = typeof sidecar.image === 'string' ? sidecar.image : '';
      if (!/outrigger/.test(img)) this.fail(r.addr, r.b, 'container_definitions', `the outrigger container's image (${img}) is not the outrigger image`);
      if (sidecar.essential !== true) this.fail(r.addr, r.b, 'container_definitions', 'the outrigger container must be essential');
      const hc = sidecar.healthCheck && sidecar.healthCheck.command;
      if (!Array.isArray(hc) || !hc.some((x) => typeof x === 'string' && x.includes('/ready'))) {
        this.fail(r.addr, r.b, 'container_definitions', 'the outrigger container needs a health check on /ready');
      }
      const stops = this.values.of(sidecar.stopTimeout, ctx);
      if (sidecar.stopTimeout === undefined || stops.some((s) => s === UNKNOWN || typeof s !== 'number' || s < 60)) {
        this.fail(r.addr, r.b, 'container_definitions', `the outrigger container's stopTimeout must be at least 60 s to drain (${sidecar.stopTimeout === undefined ? 'not set' : `may be ${stops.map((s) => (s === UNKNOWN ? 'unknown' : s)).join(', ')}`})`);
      }
      const ports = [].concat(sidecar.portMappings || []).flatMap((p) => this.values.of(p.containerPort, ctx));
      for (const p of [15000, 9901]) {
        if (!ports.includes(p)) this.fail(r.addr, r.b, 'container_definitions', `the outrigger container must map port ${p}`);
      }
      const sidecarDeps = new Set((sidecar.dependsOn || []).map((d) => d.containerName));
      for (const c of containers) {
        if (!c || typeof c !== 'object') continue;
        const lc = c.logConfiguration || {};
        if (lc.logDriver !== 'awslogs') this.fail(r.addr, r.b, 'container_definitions', `container ${c.name}: logs must go to CloudWatch (logDriver awslogs)`);
        if (c === sidecar || sidecarDeps.has(c.name)) continue;
        const dep = (c.dependsOn || []).find((d) => d.containerName === 'outrigger');
        if (!dep || dep.condition !== 'HEALTHY') {
          this.fail(r.addr, r.b, 'container_definitions', `container ${c.name} must depend on outrigger with condition HEALTHY`);
        }
      }
      if (!this.values.all(r.json.network_mode, ctx, 'awsvpc')) this.fail(r.addr, r.b, 'network_mode', 'network_mode must be awsvpc');
      const compat = this.values.strings(r.json.requires_compatibilities, ctx);
      if (!compat.includes('FARGATE')) this.fail(r.addr, r.b, 'requires_compatibilities', 'the task must be Fargate-compatible');
    }
  }

  openIngress() {
    const publicSgs = new Set();
    for (const lb of this.resources('aws_lb')) {
      const internal = this.values.of(lb.json.internal, { mod: lb.mod, block: lb.json });
      if (!internal.every((x) => x === false)) continue;
      for (const s of this.values.strings(lb.json.security_groups, { mod: lb.mod, block: lb.json })) {
        const n = refTo(s, 'aws_security_group');
        if (n) publicSgs.add(`${lb.mod.dir}:${n}`);
      }
      for (const s of lb.json.security_groups ? [].concat(lb.json.security_groups) : []) {
        const n = refTo(s, 'aws_security_group');
        if (n) publicSgs.add(`${lb.mod.dir}:${n}`);
      }
    }
    const check = (r, sgName, cidrs, what, ctx) => {
      const vals = [];
      for (const c of cidrs) vals.push(...(c === undefined ? [] : this.values.strings(c, ctx)));
      if (!vals.some((v) => OPEN_CIDRS.has(v))) return;
      if (sgName && publicSgs.has(`${r.mod.dir}:${sgName}`)) return;
      this.fail(r.addr, r.b, what, `ingress from ${vals.filter((v) => OPEN_CIDRS.has(v)).join(' and ')}${sgName ? ` into aws_security_group.${sgName}` : ''}, which is not on a public (internal = false) load balancer`);
    };
    for (const r of this.resources('aws_security_group')) {
      for (const ing of [].concat(r.json.ingress || [])) {
        check(r, r.name, [ing.cidr_blocks, ing.ipv6_cidr_blocks], 'ingress', { mod: r.mod, block: r.json });
      }
    }
    for (const r of this.resources('aws_vpc_security_group_ingress_rule')) {
      check(r, refTo(r.json.security_group_id, 'aws_security_group'), [r.json.cidr_ipv4, r.json.cidr_ipv6], 'cidr_ipv4', { mod: r.mod, block: r.json });
    }
    for (const r of this.resources('aws_security_group_rule')) {
      if (r.json.type !== 'ingress') continue;
      check(r, refTo(r.json.security_group_id, 'aws_security_group'), [r.json.cidr_blocks, r.json.ipv6_cidr_blocks], 'cidr_blocks', { mod: r.mod, block: r.json });
    }
  }

  roots() {
    for (const mod of this.tree.modules.values()) {
      if (mod.broken || !mod.isRoot) continue;
      const usesAws = mod.resources.size + mod.data.size + mod.modules.size > 0;
      if (!usesAws) continue;
      const where = mod.files.find((f) => f.endsWith('versions.tf')) || mod.files[0];
      if (!mod.tf || !mod.tf.backend) this.report.error('policy', where, 0, `root ${path.relative(this.tree.base, mod.dir)}: no backend "s3" block (state is kept remotely, with locking)`);
      for (const p of mod.providers) {
        const alias = attr(p.body, 'alias');
        const name = alias ? `provider aws.${JSON.parse(alias.expr)}` : 'provider aws';
        const ar = blocks(p.body, 'assume_role');
        if (ar.length === 0 || !attr(ar[0].body, 'role_arn')) this.report.error('policy', p.file, p.line, `${name}: must assume the deploy role of its account (assume_role { role_arn = ... })`);
        if (!attr(p.body, 'allowed_account_ids')) this.report.error('policy', p.file, p.line, `${name}: set allowed_account_ids so that it cannot act on the wrong account`);
        const dt = blocks(p.body, 'default_tags');
        if (dt.length === 0) this.report.error('policy', p.file, p.line, `${name}: needs default_tags so that everything it creates is tagged`);
      }
    }
  }

  buckets() {
    for (const r of this.resources('aws_s3_bucket')) {
      const related = (t) => this.resources(t).filter((x) => x.mod === r.mod && refTo(x.json.bucket, 'aws_s3_bucket') === r.name);
      const pab = related('aws_s3_bucket_public_access_block');
      if (pab.length === 0) this.fail(r.addr, r.b, null, 'no aws_s3_bucket_public_access_block');
      for (const p of pab) {
        for (const k of ['block_public_acls', 'block_public_policy', 'ignore_public_acls', 'restrict_public_buckets']) {
          if (p.json[k] !== true) this.fail(p.addr, p.b, k, `${k} must be true`);
        }
      }
      if (related('aws_s3_bucket_server_side_encryption_configuration').length === 0) this.fail(r.addr, r.b, null, 'no aws_s3_bucket_server_side_encryption_configuration');
      const ver = related('aws_s3_bucket_versioning');
      if (ver.length === 0) this.fail(r.addr, r.b, null, 'no aws_s3_bucket_versioning');
      for (const v of ver) {
        const status = ((v.json.versioning_configuration || [])[0] || {}).status;
        if (status !== 'Enabled') this.fail(v.addr, v.b, 'versioning_configuration', 'versioning must be Enabled');
      }
    }
  }

  ecr() {
    for (const r of this.resources('aws_ecr_repository')) {
      const scan = ((r.json.image_scanning_configuration || [])[0] || {}).scan_on_push;
      if (scan !== true) this.fail(r.addr, r.b, 'image_scanning_configuration', 'scan_on_push must be true');
      if (r.json.image_tag_mutability !== 'IMMUTABLE') this.fail(r.addr, r.b, 'image_tag_mutability', 'tags must be IMMUTABLE');
    }
  }

  lattice() {
    const policies = [...this.resources('aws_vpclattice_auth_policy')];
    for (const r of [...this.resources('aws_vpclattice_service'), ...this.resources('aws_vpclattice_service_network')]) {
      const ctx = { mod: r.mod, block: r.json };
      if (!this.values.all(r.json.auth_type, ctx, 'AWS_IAM')) this.fail(r.addr, r.b, 'auth_type', 'auth_type must be AWS_IAM');
      const type = r.b.labels[0];
      if (!policies.some((p) => p.mod === r.mod && refTo(p.json.resource_identifier, type) === r.name)) {
        this.fail(r.addr, r.b, null, 'no aws_vpclattice_auth_policy for it');
      }
      if (type === 'aws_vpclattice_service') {
        if (r.json.certificate_arn === undefined || r.json.custom_domain_name === undefined) {
          this.fail(r.addr, r.b, null, 'needs a custom_domain_name and its certificate_arn (from the Private CA)');
        }
        const listeners = this.resources('aws_vpclattice_listener').filter((l) => l.mod === r.mod && refTo(l.json.service_identifier, 'aws_vpclattice_service') === r.name);
        if (listeners.length === 0) this.fail(r.addr, r.b, null, 'has no listener');
        for (const l of listeners) {
          if (l.json.protocol !== 'HTTPS') this.fail(l.addr, l.b, 'protocol', 'Lattice listeners must be HTTPS');
        }
      }
    }
    for (const r of this.resources('aws_vpclattice_service_network_vpc_association')) {
      if (r.json.security_group_ids === undefined) this.fail(r.addr, r.b, null, 'the VPC association needs a security group');
    }
  }

  ecs() {
    for (const r of this.resources('aws_ecs_cluster')) {
      const s = [].concat(r.json.setting || []).find((x) => x.name === 'containerInsights');
      if (!s || !['enabled', 'enhanced'].includes(s.value)) this.fail(r.addr, r.b, 'setting', 'Container Insights must be enabled');
    }
    for (const r of this.resources('aws_ecs_service')) {
      if (r.json.launch_type !== 'FARGATE' && !r.json.capacity_provider_strategy) this.fail(r.addr, r.b, 'launch_type', 'services run on Fargate');
      const nc = (r.json.network_configuration || [])[0] || {};
      if (nc.assign_public_ip !== false) this.fail(r.addr, r.b, 'network_configuration', 'tasks get no public IP (assign_public_ip = false)');
    }
  }

  hygiene() {
    for (const r of this.resources('aws_kms_key')) {
      if (r.json.enable_key_rotation !== true) this.fail(r.addr, r.b, 'enable_key_rotation', 'KMS keys rotate (enable_key_rotation = true)');
    }
    for (const r of this.resources('aws_cloudwatch_log_group')) {
      if (r.json.retention_in_days === undefined) this.fail(r.addr, r.b, null, 'log groups need retention_in_days');
    }
    for (const r of this.resources('aws_vpc_endpoint')) {
      if (r.json.vpc_endpoint_type === 'Interface' && r.json.security_group_ids === undefined) this.fail(r.addr, r.b, null, 'interface endpoints need a security group');
    }
  }

  tags() {
    for (const mod of this.tree.modules.values()) {
      if (mod.broken) continue;
      for (const [addr, b] of mod.resources) {
        const s = this.tree.schema.get('resource', b.labels[0]);
        if (s && s.root.attributes.tags && !attr(b.body, 'tags')) this.fail(addr, b, null, 'takes tags but sets none (tags = var.tags, or merge(var.tags, {...}))');
      }
    }
  }

  layout() {
    const present = new Set();
    for (const mod of this.tree.modules.values()) for (const b of mod.resources.values()) present.add(b.labels[0]);
    for (const t of LAYOUT_TYPES) {
      if (!present.has(t)) this.report.error('policy', null, 0, `layout: no ${t} anywhere in the tree`);
    }
  }
}

function findAttr(body, name) {
  for (const it of body) {
    if (it.kind === 'attr' && it.name === name) return it;
    if (it.kind === 'block' && it.type === name) return it;
  }
  return null;
}

function checkPolicy(tree, stats, opts) {
  new Policy(tree, stats, opts).run();
}

module.exports = { checkPolicy, LAYOUT_TYPES, UNKNOWN };
