'use strict';
// Unit tests of the checker's parts: the reference reader, the schema reader, version constraints.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { findRefs, findTemplateRefs, objectKeys } = require('../lib/refs');
const { Schema } = require('../lib/schema');
const { versionAdmits } = require('../lib/check-schema');
const { parseFile, literal } = require('../lib/hcl');

const refs = (e) => findRefs(e).map((r) => [r.root, ...r.parts].join('.'));

test('references: traversals, indexes, splats', () => {
  assert.deepEqual(refs('aws_subnet.private[each.key].id'), ['each.key', 'aws_subnet.private.[].id']);
  assert.deepEqual(refs('module.m[0].out'), ['module.m.[].out']);
  assert.deepEqual(refs('aws_instance.x[*].id'), ['aws_instance.x.*.id']);
  assert.deepEqual(refs('data.aws_region.current.region'), ['data.aws_region.current.region']);
});

test('references: for-expression names, function names and object keys are not references', () => {
  assert.deepEqual(refs('[for az in var.azs : aws_subnet.public[az].id if var.public]'), ['var.azs', 'aws_subnet.public.[].id', 'var.public']);
  assert.deepEqual(refs('{ for k, v in local.m : k => upper(v) }'), ['local.m']);
  assert.deepEqual(refs('merge(var.a, { b = local.c })'), ['var.a', 'local.c']);
});

test('references: inside strings and heredocs, not in escapes', () => {
  assert.deepEqual(refs('"arn:${data.aws_partition.current.partition}:iam::${var.a}:root"'), ['data.aws_partition.current.partition', 'var.a']);
  assert.deepEqual(refs('"$${literal} ${var.real}"'), ['var.real']);
  assert.deepEqual(refs('<<-EOT\n  hello ${var.h}\n  EOT'), ['var.h']);
});

test('template references: %{ for } binds its names until %{ endfor }', () => {
  const t = 'a: ${x}\n%{ for k, v in items ~}\n- ${k}=${v.y} ${z}\n%{ endfor ~}\nb: ${k}\n';
  assert.deepEqual(findTemplateRefs(t).map((r) => r.root), ['x', 'items', 'z', 'k']);
});

test('object keys of a templatefile argument', () => {
  assert.deepEqual(objectKeys('{\n  a = 1\n  "b.c" = f(x, { y = 2 })\n  d = [for q in r : q]\n}'), ['a', 'b.c', 'd']);
  assert.equal(objectKeys('local.vars'), null);
});

test('the structural reader tells blocks from arguments and keeps lines', () => {
  const { items } = parseFile('x.tf', 'resource "aws_vpc" "a" {\n  cidr_block = "10.0.0.0/16"\n  tags = {\n    A = "b"\n  }\n  lifecycle {}\n}\n');
  const r = items[0];
  assert.equal(r.kind, 'block');
  assert.deepEqual(r.labels, ['aws_vpc', 'a']);
  assert.deepEqual(r.body.map((x) => [x.kind, x.name || x.type, x.line]), [['attr', 'cidr_block', 2], ['attr', 'tags', 3], ['block', 'lifecycle', 6]]);
  assert.equal(literal(r.body[0].expr), '10.0.0.0/16');
});

test('schema: read from @cdktn/provider-aws, hashicorp/aws 6.66.0', () => {
  const s = new Schema();
  assert.equal(s.version.aws, '6.66.0');
  assert.equal(s.version.bindings, '25.7.0');
  const eps = s.get('resource', 'aws_vpc_endpoint_service');
  assert.equal(eps.root.attributes.acceptance_required.required, true);
  assert.equal(eps.root.attributes.allowed_principals.required, false);
  assert.ok(eps.readable.has('service_name'), 'computed attributes are readable');
  const sg = s.get('resource', 'aws_security_group');
  assert.equal(sg.root.attributes.ingress.isBlock, true);
  const tg = s.get('resource', 'aws_vpclattice_target_group');
  assert.equal(tg.root.attributes.config.single, true);
  assert.equal(tg.root.attributes.config.nested.attributes.health_check.nested.attributes.matcher.isBlock, true);
  assert.equal(s.get('data', 'aws_iam_policy_document').root.attributes.statement.isBlock, true);
  assert.equal(s.get('resource', 'aws_no_such_thing'), null);
  assert.ok(s.get('provider', 'aws').root.attributes.assume_role.isBlock);
});

test('version constraints', () => {
  assert.ok(versionAdmits('6.66.0', '6.66.0'));
  assert.ok(versionAdmits('>= 6.0.0', '6.66.0'));
  assert.ok(versionAdmits('>= 1.10.0, < 2.0.0', '1.10.5'));
  assert.ok(versionAdmits('~> 6.66', '6.70.1'));
  assert.ok(!versionAdmits('~> 6.66.0', '6.67.0'));
  assert.ok(!versionAdmits('>= 7.0.0', '6.66.0'));
});
