#!/usr/bin/env node
'use strict';
// `node infra/tests/bin/check.js [dir]` checks a Terraform tree offline (default: infra/, without
// infra/tests). Exits 1 when anything fails. `--layout` also requires every resource type the
// reference layouts call for (on by default for infra/); `--quiet` prints only errors and the summary.
const path = require('path');
const { check } = require('../lib/checker');

(async () => {
  const args = process.argv.slice(2);
  const quiet = args.includes('--quiet');
  const dirArg = args.find((a) => !a.startsWith('--'));
  const infra = path.resolve(__dirname, '..', '..');
  const dir = path.resolve(dirArg || infra);
  const isInfra = dir === infra;
  const { report, stats } = await check(dir, { exclude: isInfra ? ['tests'] : [], layout: isInfra || args.includes('--layout') });
  const rel = path.relative(process.cwd(), dir) || '.';
  if (!quiet) for (const w of report.warnings) console.log(`warning: ${w.text}`);
  for (const e of report.errors) console.log(`error: ${e.text}`);
  console.log('');
  console.log(`infra check of ${rel}: hashicorp/aws ${stats.schemaVersion.aws} schema from @cdktn/provider-aws ${stats.schemaVersion.bindings}`);
  console.log(`  ${stats.files} files (${stats.modules} modules, ${stats.roots} roots), ${stats.resources} resources and ${stats.dataSources} data sources of ${stats.types.size} types, ${stats.providers} provider blocks`);
  console.log(`  ${stats.arguments} arguments and ${stats.blocks} nested blocks checked against the schema, ${stats.references} references resolved, ${stats.moduleCalls} module calls, ${stats.templates} templates, ${stats.tfvars} tfvars files`);
  const checks = ['syntax', 'fmt', 'structure', 'schema', 'versions', 'refs', 'modules', 'providers', 'tfvars', 'policy'];
  console.log(`  ${checks.map((c) => `${c} ${report.counts[c] ? `FAIL(${report.counts[c]})` : 'ok'}`).join(', ')}`);
  for (const p of stats.policies) console.log(`  policy ${p.ok ? 'ok  ' : 'FAIL'} ${p.name}`);
  console.log(`  ${report.errors.length} errors, ${report.warnings.length} warnings in ${(stats.ms / 1000).toFixed(1)} s`);
  process.exit(report.errors.length ? 1 : 0);
})().catch((e) => {
  console.error(`infra check crashed: ${e && e.stack ? e.stack : e}`);
  process.exit(2);
});
