// A development PKI shaped like an AWS Private CA hierarchy (a root CA, a subordinate CA that
// issues, leaves whose SANs carry the service identity), for local runs, examples and tests.
// `outrigger pki init DIR` and `outrigger pki issue DIR --name N --account A ...`; see --help and
// proxy/tls/README.md.
//
// Thread affinity: run from the CLI's main thread, before anything else starts.
#pragma once

namespace outrigger::tls {

// argv[0] is "pki", argv[1] "init", "issue" or "--help". Writes to stdout/stderr; returns the
// process exit code: 0 done, 1 failed (nothing half-written is left behind), 2 usage error.
int pki_main(int argc, char** argv);

}  // namespace outrigger::tls
