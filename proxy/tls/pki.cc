#include "proxy/tls/pki.h"

#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <expected>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/tls/ossl.h"

namespace outrigger::tls {
namespace {

namespace fs = std::filesystem;
using ossl::PkeyPtr;
using ossl::X509Ptr;

constexpr int64_t kDay = 86'400;
constexpr int64_t kSkew = 300;  // notBefore is backdated this much for clocks slightly behind
constexpr int64_t kRootDays = 3650;
constexpr int64_t kSubDays = 1825;
constexpr std::string_view kOrg = "Outrigger dev PKI";

constexpr std::string_view kPkiHelp = R"(Usage:
  outrigger pki init DIR [--rsa]
  outrigger pki issue DIR --name NAME --account ACCOUNT [options]

A development PKI shaped like an AWS Private CA hierarchy: a root CA, a subordinate CA that
issues, and leaf certificates whose SANs carry the service identity. Run `outrigger pki init
--help` or `outrigger pki issue --help` for details.
)";

constexpr std::string_view kInitHelp = R"(Usage: outrigger pki init DIR [--rsa]

Creates DIR (if needed) with a root CA (10 years; CA:TRUE; keyCertSign, cRLSign) and a
subordinate CA signed by it (5 years; CA:TRUE, pathlen:0), like an AWS Private CA hierarchy:
  DIR/root.pem  DIR/root.key  DIR/sub.pem  DIR/sub.key
  DIR/bundle.pem   the trust bundle: root, then subordinate
Keys are written with mode 0600. Existing files are never overwritten.

Options:
  --rsa       RSA 2048 keys (default: EC P-256)
  --help
)";

constexpr std::string_view kIssueHelp =
    R"(Usage: outrigger pki issue DIR --name NAME --account ACCOUNT [options]

Issues a leaf certificate from the subordinate CA in DIR. Its identity is carried by the SANs:
  DNS:NAME (and each --dns), URI:spiffe://ACCOUNT/NAME
Files (in --out-dir, default DIR):
  NAME.pem       leaf, then the subordinate CA (what a server or client presents)
  NAME.key       private key, mode 0600
  NAME.leaf.pem  the leaf alone

Options:
  --name NAME             service name: 1-63 of [a-z0-9-], not starting or ending with '-'
  --account ACCOUNT       the AWS account id: 12 digits
  --dns NAME              an extra DNS SAN (repeatable; "*.example.com" allowed)
  --days N                validity in days (default 30; 0 = already expired)
  --server | --client | --both
                          extended key usage: serverAuth, clientAuth, or both (default)
  --rsa                   RSA 2048 key (default: EC P-256)
  --out-dir DIR           where to write (default: the CA directory)
  --force                 replace existing files (atomically, for rotation)
For tests (deliberately broken material):
  --expired               notAfter in the past (same as --days 0)
  --not-yet-valid         notBefore one day in the future
  --not-before-days N     shift notBefore by N days (may be negative); notAfter follows
  --self-signed           a self-signed leaf, not issued by the subordinate CA
  --help
)";

// ---- small helpers ----

struct Failure {
  std::string message;
  int code = 1;
};

std::unexpected<Failure> fail(std::string message, int code = 1) {
  return std::unexpected(Failure{std::move(message), code});
}

std::string openssl_error(std::string_view what) {
  std::string why = ossl::take_errors();
  return std::string(what) + (why.empty() ? "" : ": " + why);
}

std::expected<PkeyPtr, Failure> make_key(bool rsa) {
  EVP_PKEY* key = rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
  if (key == nullptr) return fail(openssl_error("cannot generate a key"));
  return PkeyPtr(key);
}

bool set_serial(X509* cert) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return false;
  bytes[0] &= 0x7f;  // positive
  bytes[0] |= 0x40;  // and always 16 bytes long
  BIGNUM* bn = BN_bin2bn(bytes, sizeof bytes, nullptr);
  bool ok = bn != nullptr && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != nullptr;
  BN_free(bn);
  return ok;
}

bool add_name_entry(X509_NAME* name, const char* field, std::string_view value) {
  return X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                    reinterpret_cast<const unsigned char*>(value.data()),
                                    static_cast<int>(value.size()), -1, 0) == 1;
}

bool add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return false;
  bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

struct CertSpec {
  std::vector<std::pair<const char*, std::string>> subject;
  int64_t not_before = 0;
  int64_t not_after = 0;
  std::vector<std::pair<int, std::string>> extensions;  // after SKI; AKI is added last
};

// Builds and signs a certificate. issuer == nullptr: self-signed with `key`.
std::expected<X509Ptr, Failure> make_cert(const CertSpec& spec, EVP_PKEY* key, X509* issuer,
                                          EVP_PKEY* issuer_key) {
  X509Ptr cert(X509_new());
  if (!cert) return fail(openssl_error("cannot create a certificate"));
  X509* x = cert.get();
  X509_NAME* name = X509_get_subject_name(x);
  for (const auto& [field, value] : spec.subject) {
    if (!add_name_entry(name, field, value)) return fail(openssl_error("bad subject"));
  }
  bool ok = X509_set_version(x, X509_VERSION_3) == 1 && set_serial(x) &&
            X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) == 1 &&
            ASN1_TIME_set(X509_getm_notBefore(x), static_cast<time_t>(spec.not_before)) &&
            ASN1_TIME_set(X509_getm_notAfter(x), static_cast<time_t>(spec.not_after)) &&
            X509_set_pubkey(x, key) == 1;
  if (!ok) return fail(openssl_error("cannot fill in the certificate"));
  X509* signer_cert = issuer ? issuer : x;
  for (const auto& [nid, value] : spec.extensions) {
    if (!add_ext(x, signer_cert, nid, value)) {
      return fail(
          openssl_error("cannot add extension " + std::string(OBJ_nid2sn(nid)) + "=" + value));
    }
  }
  // The key identifiers chain a certificate to its issuer's (AKI = the issuer's SKI).
  if (!add_ext(x, signer_cert, NID_subject_key_identifier, "hash") ||
      !add_ext(x, signer_cert, NID_authority_key_identifier, "keyid:always")) {
    return fail(openssl_error("cannot add key identifiers"));
  }
  if (X509_sign(x, issuer ? issuer_key : key, EVP_sha256()) == 0) {
    return fail(openssl_error("cannot sign the certificate"));
  }
  return cert;
}

std::string pem_of(X509* cert) {
  ossl::BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

std::string pem_of(EVP_PKEY* key) {
  ossl::BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

// Writes through a temporary file in the same directory, then either renames it into place
// (overwrite) or hard-links it (fails with EEXIST, atomically, when the file exists).
std::optional<std::string> write_file(const fs::path& path, std::string_view content, mode_t mode,
                                      bool overwrite) {
  std::string tmp = path.string() + ".tmp.XXXXXX";
  int fd = ::mkstemp(tmp.data());
  if (fd < 0) return "cannot write " + path.string() + ": " + std::strerror(errno);
  auto cleanup = [&](int err) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return "cannot write " + path.string() + ": " + std::strerror(err);
  };
  if (::fchmod(fd, mode) != 0) return cleanup(errno);
  for (size_t done = 0; done < content.size();) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return cleanup(errno);
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) return cleanup(errno);
  ::close(fd);
  int rc = overwrite ? ::rename(tmp.c_str(), path.c_str()) : ::link(tmp.c_str(), path.c_str());
  int err = errno;
  if (!overwrite || rc != 0) ::unlink(tmp.c_str());
  if (rc != 0) {
    if (err == EEXIST) return path.string() + " exists; refusing to overwrite";
    return "cannot write " + path.string() + ": " + std::strerror(err);
  }
  return std::nullopt;
}

struct OutFile {
  fs::path path;
  std::string content;
  mode_t mode;
};

std::optional<std::string> write_all(const std::vector<OutFile>& files, bool overwrite) {
  if (!overwrite) {
    for (const OutFile& f : files) {
      std::error_code ec;
      if (fs::exists(f.path, ec)) return f.path.string() + " exists; refusing to overwrite";
    }
  }
  std::vector<fs::path> written;
  for (const OutFile& f : files) {
    if (auto err = write_file(f.path, f.content, f.mode, overwrite)) {
      // Without --force nothing existed before: remove what this run wrote.
      if (!overwrite) {
        for (const fs::path& p : written) ::unlink(p.c_str());
      }
      return err;
    }
    written.push_back(f.path);
  }
  return std::nullopt;
}

// ---- arguments ----

struct Args {
  std::vector<std::string> positional;
  std::vector<std::pair<std::string, std::string>> options;  // in order; flags have ""
  bool help = false;

  const std::string* get(std::string_view name) const {
    const std::string* found = nullptr;
    for (const auto& [k, v] : options) {
      if (k == name) found = &v;
    }
    return found;
  }
  bool has(std::string_view name) const { return get(name) != nullptr; }
  std::vector<std::string> all(std::string_view name) const {
    std::vector<std::string> out;
    for (const auto& [k, v] : options) {
      if (k == name) out.push_back(v);
    }
    return out;
  }
};

std::expected<Args, Failure> parse_args(int argc, char** argv, int first,
                                        const std::vector<std::string_view>& with_value,
                                        const std::vector<std::string_view>& flags) {
  Args a;
  for (int i = first; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      a.help = true;
      continue;
    }
    if (!arg.starts_with("--")) {
      a.positional.emplace_back(arg);
      continue;
    }
    std::string name(arg.substr(2));
    std::optional<std::string> value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    auto in = [&](const std::vector<std::string_view>& list) {
      for (std::string_view k : list) {
        if (k == name) return true;
      }
      return false;
    };
    if (in(flags)) {
      if (value) return fail("--" + name + " takes no value", 2);
      a.options.emplace_back(name, "");
    } else if (in(with_value)) {
      if (!value) {
        if (i + 1 >= argc) return fail("--" + name + " needs a value", 2);
        value = argv[++i];
      }
      a.options.emplace_back(name, *value);
    } else {
      return fail("unknown option --" + name, 2);
    }
  }
  return a;
}

std::expected<int64_t, Failure> parse_int(const Args& a, std::string_view name, int64_t def,
                                          int64_t min, int64_t max) {
  const std::string* v = a.get(name);
  if (v == nullptr) return def;
  std::string_view text = *v;
  bool neg = text.starts_with('-');
  if (neg) text.remove_prefix(1);
  if (text.empty() || text.size() > 9 ||
      text.find_first_not_of("0123456789") != std::string_view::npos) {
    return fail("--" + std::string(name) + ": expected an integer, got \"" + *v + "\"", 2);
  }
  int64_t n = std::stoll(std::string(text)) * (neg ? -1 : 1);
  if (n < min || n > max) {
    return fail("--" + std::string(name) + ": " + *v + " is out of range (" + std::to_string(min) +
                    ".." + std::to_string(max) + ")",
                2);
  }
  return n;
}

bool valid_service_name(std::string_view n) {
  if (n.empty() || n.size() > 63 || n.front() == '-' || n.back() == '-') return false;
  for (char c : n) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

bool valid_dns_name(std::string_view n) {
  if (n.starts_with("*.")) n.remove_prefix(2);
  if (n.empty() || n.size() > 253) return false;
  size_t start = 0;
  while (start <= n.size()) {
    size_t dot = n.find('.', start);
    std::string_view label = n.substr(start, dot == std::string_view::npos ? n.npos : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char c : label) {
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return true;
}

// ---- init ----

std::expected<std::string, Failure> run_init(const Args& a) {
  if (a.positional.size() != 1) return fail("init: expected exactly one DIR", 2);
  fs::path dir = a.positional[0];
  bool rsa = a.has("rsa");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return fail("cannot create " + dir.string() + ": " + ec.message());
  for (const char* f : {"root.pem", "root.key", "sub.pem", "sub.key", "bundle.pem"}) {
    if (fs::exists(dir / f, ec)) {
      return fail((dir / f).string() + " exists; refusing to overwrite (use a new directory)");
    }
  }
  int64_t now = static_cast<int64_t>(std::time(nullptr));
  auto root_key = make_key(rsa);
  if (!root_key) return std::unexpected(root_key.error());
  CertSpec root_spec;
  root_spec.subject = {{"O", std::string(kOrg)}, {"CN", "Outrigger Dev Root CA"}};
  root_spec.not_before = now - kSkew;
  root_spec.not_after = now + kRootDays * kDay;
  root_spec.extensions = {{NID_basic_constraints, "critical,CA:TRUE"},
                          {NID_key_usage, "critical,keyCertSign,cRLSign"}};
  auto root = make_cert(root_spec, root_key->get(), nullptr, nullptr);
  if (!root) return std::unexpected(root.error());

  auto sub_key = make_key(rsa);
  if (!sub_key) return std::unexpected(sub_key.error());
  CertSpec sub_spec;
  sub_spec.subject = {{"O", std::string(kOrg)}, {"CN", "Outrigger Dev Subordinate CA"}};
  sub_spec.not_before = now - kSkew;
  sub_spec.not_after = now + kSubDays * kDay;
  sub_spec.extensions = {{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                         {NID_key_usage, "critical,keyCertSign,cRLSign"}};
  auto sub = make_cert(sub_spec, sub_key->get(), root->get(), root_key->get());
  if (!sub) return std::unexpected(sub.error());

  std::string root_pem = pem_of(root->get());
  std::string sub_pem = pem_of(sub->get());
  std::vector<OutFile> files = {
      {dir / "root.key", pem_of(root_key->get()), 0600}, {dir / "root.pem", root_pem, 0644},
      {dir / "sub.key", pem_of(sub_key->get()), 0600},   {dir / "sub.pem", sub_pem, 0644},
      {dir / "bundle.pem", root_pem + sub_pem, 0644},
  };
  if (auto err = write_all(files, false)) return fail(*err);
  std::string out;
  for (const OutFile& f : files) out += "wrote " + f.path.string() + "\n";
  out += "root CA valid until " + ossl::format_time(root_spec.not_after) +
         ", subordinate CA until " + ossl::format_time(sub_spec.not_after) + "\n";
  return out;
}

// ---- issue ----

std::expected<std::string, Failure> run_issue(const Args& a) {
  if (a.positional.size() != 1) return fail("issue: expected exactly one DIR", 2);
  fs::path dir = a.positional[0];
  const std::string* name = a.get("name");
  const std::string* account = a.get("account");
  if (name == nullptr) return fail("issue: --name is required", 2);
  if (account == nullptr) return fail("issue: --account is required", 2);
  if (!valid_service_name(*name)) {
    return fail("--name: \"" + *name +
                    "\" is not a valid service name (1-63 of a-z, 0-9 and '-', not starting or "
                    "ending with '-')",
                2);
  }
  if (account->size() != 12 || account->find_first_not_of("0123456789") != std::string::npos) {
    return fail("--account: \"" + *account + "\" is not an AWS account id (12 digits)", 2);
  }
  std::vector<std::string> dns = {*name};
  for (const std::string& d : a.all("dns")) {
    if (!valid_dns_name(d)) {
      return fail("--dns: \"" + d + "\" is not a valid lower-case DNS name", 2);
    }
    dns.push_back(d);
  }
  int usages = a.has("client") + a.has("server") + a.has("both");
  if (usages > 1) return fail("--client, --server and --both are mutually exclusive", 2);
  auto days = parse_int(a, "days", 30, 0, 3650);
  if (!days) return std::unexpected(days.error());
  auto shift = parse_int(a, "not-before-days", 0, -3650, 3650);
  if (!shift) return std::unexpected(shift.error());
  bool expired = a.has("expired") || *days == 0;
  bool not_yet_valid = a.has("not-yet-valid");
  if (expired + not_yet_valid + a.has("not-before-days") > 1) {
    return fail(
        "--expired (or --days 0), --not-yet-valid and --not-before-days are mutually "
        "exclusive",
        2);
  }
  bool self_signed = a.has("self-signed");
  fs::path out_dir = a.has("out-dir") ? fs::path(*a.get("out-dir")) : dir;

  ossl::X509Ptr sub;
  PkeyPtr sub_key;
  if (!self_signed) {
    auto certs = ossl::load_certs((dir / "sub.pem").string());
    if (!certs) return fail("cannot load the subordinate CA: " + certs.error());
    auto key = ossl::load_key((dir / "sub.key").string());
    if (!key) return fail("cannot load the subordinate CA key: " + key.error());
    sub = std::move((*certs)[0]);
    sub_key = std::move(*key);
    if (X509_check_private_key(sub.get(), sub_key.get()) != 1) {
      ERR_clear_error();
      return fail((dir / "sub.key").string() + " does not match " + (dir / "sub.pem").string());
    }
  }

  int64_t now = static_cast<int64_t>(std::time(nullptr));
  CertSpec spec;
  if (expired) {
    spec.not_before = now - 2 * kDay;
    spec.not_after = now - kDay;
  } else if (not_yet_valid) {
    spec.not_before = now + kDay;
    spec.not_after = spec.not_before + *days * kDay;
  } else {
    spec.not_before = now + *shift * kDay - kSkew;
    spec.not_after = now + *shift * kDay + *days * kDay;
  }
  if (sub && spec.not_after > ossl::not_after(sub.get())) {
    return fail("the certificate would outlive the subordinate CA (valid until " +
                ossl::format_time(ossl::not_after(sub.get())) + "); use fewer --days");
  }
  std::string uri = "spiffe://" + *account + "/" + *name;
  std::string san;
  for (const std::string& d : dns) san += (san.empty() ? "DNS:" : ",DNS:") + d;
  san += ",URI:" + uri;
  bool rsa = a.has("rsa");
  std::string eku = a.has("client")   ? "clientAuth"
                    : a.has("server") ? "serverAuth"
                                      : "serverAuth,clientAuth";
  spec.subject = {{"O", std::string(kOrg)}, {"OU", *account}, {"CN", *name}};
  spec.extensions = {
      {NID_basic_constraints, "critical,CA:FALSE"},
      {NID_key_usage,
       rsa ? "critical,digitalSignature,keyEncipherment" : "critical,digitalSignature"},
      {NID_ext_key_usage, eku},
      {NID_subject_alt_name, san},
  };
  auto key = make_key(rsa);
  if (!key) return std::unexpected(key.error());
  auto leaf = make_cert(spec, key->get(), sub.get(), sub_key.get());
  if (!leaf) return std::unexpected(leaf.error());

  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) return fail("cannot create " + out_dir.string() + ": " + ec.message());
  std::string leaf_pem = pem_of(leaf->get());
  std::vector<OutFile> files = {
      {out_dir / (*name + ".key"), pem_of(key->get()), 0600},
      {out_dir / (*name + ".leaf.pem"), leaf_pem, 0644},
      {out_dir / (*name + ".pem"), leaf_pem + (sub ? pem_of(sub.get()) : ""), 0644},
  };
  if (auto err = write_all(files, a.has("force"))) return fail(*err);
  std::string out;
  for (const OutFile& f : files) out += "wrote " + f.path.string() + "\n";
  out += "issued " + uri + " (DNS " + dns[0] + ", " + eku + "), valid " +
         ossl::format_time(spec.not_before) + " to " + ossl::format_time(spec.not_after) +
         (self_signed ? ", self-signed" : "") + "\n";
  return out;
}

}  // namespace

int pki_main(int argc, char** argv) {
  std::string_view sub = argc > 1 ? argv[1] : "";
  if (sub.empty() || sub == "--help" || sub == "-h" || sub == "help") {
    std::cout << kPkiHelp;
    return sub.empty() ? 2 : 0;
  }
  std::string_view help;
  std::expected<Args, Failure> args;
  if (sub == "init") {
    help = kInitHelp;
    args = parse_args(argc, argv, 2, {}, {"rsa"});
  } else if (sub == "issue") {
    help = kIssueHelp;
    args = parse_args(
        argc, argv, 2, {"name", "account", "dns", "days", "not-before-days", "out-dir"},
        {"client", "server", "both", "rsa", "force", "expired", "not-yet-valid", "self-signed"});
  } else {
    std::cerr << "outrigger pki: unknown command \"" << sub << "\"\n\n" << kPkiHelp;
    return 2;
  }
  if (args && args->help) {
    std::cout << help;
    return 0;
  }
  std::expected<std::string, Failure> result = !args           ? std::unexpected(args.error())
                                               : sub == "init" ? run_init(*args)
                                                               : run_issue(*args);
  if (!result) {
    std::cerr << "outrigger pki: " << result.error().message << "\n";
    if (result.error().code == 2) std::cerr << "\n" << help;
    return result.error().code;
  }
  std::cout << *result;
  return 0;
}

}  // namespace outrigger::tls
