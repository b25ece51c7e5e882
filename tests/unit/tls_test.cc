// Tests of proxy/tls/: the dev PKI (checked with the real openssl CLI), server and client
// contexts in real handshakes over loopback through Boost.Asio ssl streams, SAN matching,
// failure reasons, session resumption, caller identity and its header, allow-lists, and hot
// reload of rotated and broken material.
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "config/loader.h"
#include "proxy/tls/context.h"
#include "proxy/tls/identity.h"
#include "proxy/tls/ossl.h"
#include "proxy/tls/pki.h"
#include "proxy/tls/watcher.h"

namespace outrigger::tls {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using tcp = asio::ip::tcp;

constexpr const char* kServerUri = "spiffe://222222222222/user-service";
constexpr const char* kClientUri = "spiffe://111111111111/checkout";

int pki(std::vector<std::string> args) {
  args.insert(args.begin(), "pki");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  return pki_main(static_cast<int>(args.size()), argv.data());
}

// Runs pki quietly; returns (exit code, stderr).
std::pair<int, std::string> pki_quiet(std::vector<std::string> args) {
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  int rc = pki(std::move(args));
  testing::internal::GetCapturedStdout();
  return {rc, testing::internal::GetCapturedStderr()};
}

// Runs a shell command; returns (exit status, stdout+stderr).
std::pair<int, std::string> sh(const std::string& cmd) {
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return {-1, ""};
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

ossl::X509Ptr load_leaf(const fs::path& p) {
  auto certs = ossl::load_certs(p.string());
  EXPECT_TRUE(certs) << (certs ? "" : certs.error());
  return certs ? std::move((*certs)[0]) : nullptr;
}

// The PKI every test uses, made once: ca/ (root + sub), leaves issued from it, and a second,
// unrelated hierarchy (other/).
class TlsTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/outrigger_tls_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::string ca = (dir_ / "ca").string();
    ASSERT_EQ(pki_quiet({"init", ca}).first, 0);
    ASSERT_EQ(pki_quiet({"issue", ca, "--name", "user-service", "--account", "222222222222",
                         "--dns", "users.internal", "--server"})
                  .first,
              0);
    ASSERT_EQ(
        pki_quiet({"issue", ca, "--name", "checkout", "--account", "111111111111", "--client"})
            .first,
        0);
    ASSERT_EQ(
        pki_quiet({"issue", ca, "--name", "old", "--account", "111111111111", "--expired"}).first,
        0);
    ASSERT_EQ(
        pki_quiet({"issue", ca, "--name", "future", "--account", "111111111111", "--not-yet-valid"})
            .first,
        0);
    ASSERT_EQ(
        pki_quiet({"issue", ca, "--name", "selfie", "--account", "111111111111", "--self-signed"})
            .first,
        0);
    std::string other = (dir_ / "other").string();
    ASSERT_EQ(pki_quiet({"init", other}).first, 0);
    ASSERT_EQ(pki_quiet({"issue", other, "--name", "rogue", "--account", "111111111111"}).first, 0);
  }

  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  static std::string ca(const std::string& f) { return (dir_ / "ca" / f).string(); }
  static std::string other(const std::string& f) { return (dir_ / "other" / f).string(); }

  static ServerTlsSettings server_settings(ServerTlsSettings::ClientCert mode) {
    ServerTlsSettings s;
    s.cert_chain = ca("user-service.pem");
    s.key = ca("user-service.key");
    s.client_cert = mode;
    if (mode != ServerTlsSettings::kNone) s.client_ca = ca("bundle.pem");
    return s;
  }

  static ClientTlsSettings client_settings(std::string cert = "checkout") {
    ClientTlsSettings s;
    s.ca = ca("bundle.pem");
    if (!cert.empty()) {
      s.cert = ca(cert + ".pem");
      s.key = ca(cert + ".key");
    }
    s.sni = "user-service";
    return s;
  }

  static std::shared_ptr<const ServerTls> server(const ServerTlsSettings& s) {
    auto t = make_server_tls(s);
    EXPECT_TRUE(t) << (t ? "" : t.error());
    return t ? *t : nullptr;
  }

  static std::shared_ptr<const ClientTls> client(const ClientTlsSettings& s) {
    auto t = make_client_tls(s);
    EXPECT_TRUE(t) << (t ? "" : t.error());
    return t ? *t : nullptr;
  }

  static inline fs::path dir_;
};

struct Outcome {
  boost::system::error_code server_ec, client_ec, read_ec;
  std::string server_reason, client_reason, server_error;
  std::string server_detail, client_detail;  // handshake_failure_reason(ssl, ec)
  bool server_reused = false, client_reused = false;
  std::string server_alpn, client_alpn, sni, received;
  int version = 0;
  Identity identity;
  std::string xfcc;
};

// One connection over loopback in one io_context: the server side is an ssl::stream built from
// the adopted SSL_CTX (ServerTls::asio_context), the client side one built from an SSL* (what
// ClientTls::new_ssl returns). After the handshake the server writes "hello" and the client reads
// it (which is also when a TLS 1.3 client receives its session ticket).
Outcome connect(asio::ssl::context& server_ctx, SslPtr client_ssl, const IdentityRules& rules = {},
                std::string_view by = {}) {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  tcp::socket ss(io), cs(io);
  asio::ssl::stream<tcp::socket&> server_stream(ss, server_ctx);
  asio::ssl::stream<tcp::socket&> client_stream(cs, client_ssl.release());
  Outcome out;
  std::array<char, 5> buf{};
  acceptor.async_accept(ss, [&](const boost::system::error_code& ec) {
    if (ec) {
      out.server_ec = ec;
      return;
    }
    server_stream.async_handshake(
        asio::ssl::stream_base::server, [&](const boost::system::error_code& ec) {
          SSL* ssl = server_stream.native_handle();
          out.server_ec = ec;
          if (ec) {
            out.server_reason = handshake_failure_reason(ssl);
            out.server_detail = handshake_failure_reason(ssl, ec);
            out.server_error = ec.message();
            ss.close();
            return;
          }
          out.server_reused = SSL_session_reused(ssl) == 1;
          out.server_alpn = negotiated_alpn(ssl);
          if (const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) out.sni = name;
          out.identity = extract_identity(ssl, rules);
          out.xfcc = xfcc_value(out.identity, SSL_get0_peer_certificate(ssl), by);
          out.version = SSL_version(ssl);
          asio::async_write(server_stream, asio::buffer("hello", 5),
                            [](const boost::system::error_code&, size_t) {});
        });
  });
  cs.async_connect(acceptor.local_endpoint(), [&](const boost::system::error_code& ec) {
    if (ec) {
      out.client_ec = ec;
      return;
    }
    client_stream.async_handshake(
        asio::ssl::stream_base::client, [&](const boost::system::error_code& ec) {
          SSL* ssl = client_stream.native_handle();
          out.client_ec = ec;
          if (ec) {
            out.client_reason = handshake_failure_reason(ssl);
            out.client_detail = handshake_failure_reason(ssl, ec);
            cs.close();
            return;
          }
          out.client_reused = SSL_session_reused(ssl) == 1;
          out.client_alpn = negotiated_alpn(ssl);
          asio::async_read(client_stream, asio::buffer(buf),
                           [&](const boost::system::error_code& ec, size_t n) {
                             out.read_ec = ec;
                             out.received.assign(buf.data(), n);
                             cs.close();
                           });
        });
  });
  io.run_for(std::chrono::seconds(5));
  EXPECT_TRUE(io.stopped()) << "handshake did not finish within 5 s";
  return out;
}

Outcome connect(const ServerTls& server, const ClientTls& client, std::string_view sni = {},
                ClientSessionCache* cache = nullptr, const IdentityRules& rules = {}) {
  auto ssl = client.new_ssl(sni, cache, "127.0.0.1:443");
  EXPECT_TRUE(ssl) << (ssl ? "" : ssl.error());
  if (!ssl) return {};
  return connect(server.asio_context(), std::move(*ssl), rules, server.uri_san());
}

bool ok(const Outcome& o) { return !o.server_ec && !o.client_ec && o.received == "hello"; }

// ---------------------------------------------------------------------------------------------
// pki

TEST_F(TlsTest, PkiWritesTheHierarchyWithPrivateKeys) {
  for (const char* f : {"root.pem", "root.key", "sub.pem", "sub.key", "bundle.pem",
                        "user-service.pem", "user-service.key", "user-service.leaf.pem"}) {
    EXPECT_TRUE(fs::exists(ca(f))) << f;
  }
  for (const char* f : {"root.key", "sub.key", "user-service.key"}) {
    struct stat st {};
    ASSERT_EQ(::stat(ca(f).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << f;
  }
  struct stat st {};
  ASSERT_EQ(::stat(ca("root.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  EXPECT_EQ(read_text(ca("bundle.pem")), read_text(ca("root.pem")) + read_text(ca("sub.pem")));
  EXPECT_EQ(read_text(ca("user-service.pem")),
            read_text(ca("user-service.leaf.pem")) + read_text(ca("sub.pem")));
  EXPECT_EQ(read_text(ca("selfie.pem")), read_text(ca("selfie.leaf.pem")));

  // Refuses to overwrite, and leaves what is there untouched.
  std::string before = read_text(ca("root.pem"));
  auto [rc, err] = pki_quiet({"init", (dir_ / "ca").string()});
  EXPECT_EQ(rc, 1);
  EXPECT_NE(err.find("root.pem exists; refusing to overwrite"), std::string::npos) << err;
  EXPECT_EQ(read_text(ca("root.pem")), before);
  std::tie(rc, err) = pki_quiet(
      {"issue", (dir_ / "ca").string(), "--name", "checkout", "--account", "111111111111"});
  EXPECT_EQ(rc, 1);
  EXPECT_NE(err.find("exists; refusing to overwrite"), std::string::npos) << err;
}

TEST_F(TlsTest, PkiRejectsBadInputWithUsageErrors) {
  std::string d = (dir_ / "ca").string();
  struct Case {
    std::vector<std::string> args;
    std::string message;
  } cases[] = {
      {{"issue", d, "--name", "x", "--account", "12345678901"},
       "not an AWS account id (12 digits)"},
      {{"issue", d, "--name", "x", "--account", "12345678901a"}, "not an AWS account id"},
      {{"issue", d, "--name", "User_Service", "--account", "123456789012"},
       "not a valid service name"},
      {{"issue", d, "--name", "-x", "--account", "123456789012"}, "not a valid service name"},
      {{"issue", d, "--account", "123456789012"}, "--name is required"},
      {{"issue", d, "--name", "x"}, "--account is required"},
      {{"issue", d, "--name", "x", "--account", "123456789012", "--dns", "bad..name"},
       "not a valid lower-case DNS name"},
      {{"issue", d, "--name", "x", "--account", "123456789012", "--days", "ten"},
       "expected an integer"},
      {{"issue", d, "--name", "x", "--account", "123456789012", "--days", "9999"},
       "out of range (0..3650)"},
      {{"issue", d, "--name", "x", "--account", "123456789012", "--client", "--server"},
       "mutually exclusive"},
      {{"issue", d, "--name", "x", "--account", "123456789012", "--expired", "--not-yet-valid"},
       "mutually exclusive"},
      {{"issue", d, "--name", "x", "--account", "123456789012", "--colour", "red"},
       "unknown option --colour"},
      {{"init"}, "expected exactly one DIR"},
      {{"rotate"}, "unknown command \"rotate\""},
  };
  for (const Case& c : cases) {
    auto [rc, err] = pki_quiet(c.args);
    EXPECT_EQ(rc, 2) << c.message;
    EXPECT_NE(err.find(c.message), std::string::npos) << err;
  }
  // A CA directory without a CA is a runtime failure, not a usage error.
  auto [rc, err] =
      pki_quiet({"issue", (dir_ / "nothing").string(), "--name", "x", "--account", "123456789012"});
  EXPECT_EQ(rc, 1);
  EXPECT_NE(err.find("cannot load the subordinate CA"), std::string::npos) << err;

  testing::internal::CaptureStdout();
  EXPECT_EQ(pki({"issue", "--help"}), 0);
  std::string help = testing::internal::GetCapturedStdout();
  EXPECT_NE(help.find("URI:spiffe://ACCOUNT/NAME"), std::string::npos) << help;
  testing::internal::CaptureStdout();
  EXPECT_EQ(pki({"--help"}), 0);
  EXPECT_NE(testing::internal::GetCapturedStdout().find("outrigger pki init DIR"),
            std::string::npos);
}

// The real openssl CLI agrees with what pki wrote.
TEST_F(TlsTest, PkiOutputVerifiesWithTheOpensslCli) {
  auto [rc, out] = sh("openssl verify -CAfile " + ca("bundle.pem") + " " +
                      ca("user-service.leaf.pem") + " " + ca("checkout.leaf.pem"));
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("user-service.leaf.pem: OK"), std::string::npos) << out;
  // Root alone as the anchor, the subordinate supplied as untrusted: the chain is well formed.
  std::tie(rc, out) = sh("openssl verify -x509_strict -CAfile " + ca("root.pem") + " -untrusted " +
                         ca("sub.pem") + " " + ca("user-service.leaf.pem"));
  EXPECT_EQ(rc, 0) << out;
  std::tie(rc, out) =
      sh("openssl verify -x509_strict -CAfile " + ca("root.pem") + " " + ca("sub.pem"));
  EXPECT_EQ(rc, 0) << out;
  // The broken material is broken the intended way.
  std::tie(rc, out) = sh("openssl verify -CAfile " + ca("bundle.pem") + " " + ca("old.leaf.pem"));
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("certificate has expired"), std::string::npos) << out;
  std::tie(rc, out) =
      sh("openssl verify -CAfile " + ca("bundle.pem") + " " + ca("future.leaf.pem"));
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("certificate is not yet valid"), std::string::npos) << out;
  std::tie(rc, out) = sh("openssl verify -CAfile " + ca("bundle.pem") + " " + other("rogue.pem"));
  EXPECT_NE(rc, 0);
  std::tie(rc, out) = sh("openssl verify -CAfile " + ca("bundle.pem") + " " + ca("selfie.pem"));
  EXPECT_NE(rc, 0);

  std::tie(rc, out) = sh("openssl x509 -noout -text -in " + ca("root.pem"));
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("CA:TRUE"), std::string::npos) << out;
  EXPECT_NE(out.find("Certificate Sign, CRL Sign"), std::string::npos) << out;
  EXPECT_NE(out.find("ASN1 OID: prime256v1"), std::string::npos) << out;
  EXPECT_NE(out.find("X509v3 Subject Key Identifier"), std::string::npos) << out;

  std::tie(rc, out) = sh("openssl x509 -noout -text -in " + ca("sub.pem"));
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("X509v3 Basic Constraints: critical\n                CA:TRUE, pathlen:0"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("X509v3 Authority Key Identifier"), std::string::npos) << out;

  std::tie(rc, out) = sh("openssl x509 -noout -text -in " + ca("user-service.leaf.pem"));
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("DNS:user-service, DNS:users.internal, URI:" + std::string(kServerUri)),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("TLS Web Server Authentication"), std::string::npos) << out;
  EXPECT_EQ(out.find("TLS Web Client Authentication"), std::string::npos) << out;
  EXPECT_NE(out.find("CA:FALSE"), std::string::npos) << out;
  EXPECT_NE(out.find("Subject: O = Outrigger dev PKI, OU = 222222222222, CN = user-service"),
            std::string::npos)
      << out;
  // Default validity is 30 days.
  auto leaf = load_leaf(ca("user-service.leaf.pem"));
  ASSERT_TRUE(leaf);
  int64_t lifetime = ossl::not_after(leaf.get()) - ossl::not_before(leaf.get());
  EXPECT_NEAR(static_cast<double>(lifetime), 30.0 * 86400 + 300, 2);

  // --rsa gives an RSA 2048 hierarchy.
  std::string rsa_dir = (dir_ / "rsa").string();
  ASSERT_EQ(pki_quiet({"init", rsa_dir, "--rsa"}).first, 0);
  ASSERT_EQ(
      pki_quiet({"issue", rsa_dir, "--name", "r", "--account", "123456789012", "--rsa"}).first, 0);
  std::tie(rc, out) = sh("openssl x509 -noout -text -in " + rsa_dir + "/r.leaf.pem");
  EXPECT_NE(out.find("Public-Key: (2048 bit)"), std::string::npos) << out;
  std::tie(rc, out) = sh("openssl verify -CAfile " + rsa_dir + "/bundle.pem " + rsa_dir + "/r.pem");
  EXPECT_EQ(rc, 0) << out;
}

// ---------------------------------------------------------------------------------------------
// Loading

TEST_F(TlsTest, LoadRefusesBrokenMaterialWithClearErrors) {
  auto expect_error = [](auto result, const std::string& needle) {
    ASSERT_FALSE(result) << needle;
    EXPECT_NE(result.error().find(needle), std::string::npos) << result.error();
  };
  ServerTlsSettings s = server_settings(ServerTlsSettings::kNone);
  s.key = ca("checkout.key");
  expect_error(make_server_tls(s), "does not match certificate");
  s = server_settings(ServerTlsSettings::kNone);
  s.cert_chain = ca("old.pem");
  s.key = ca("old.key");
  expect_error(make_server_tls(s), "expired at");
  s.cert_chain = ca("future.pem");
  s.key = ca("future.key");
  expect_error(make_server_tls(s), "is not valid until");
  s.cert_chain = ca("checkout.pem");  // issued with --client only
  s.key = ca("checkout.key");
  expect_error(make_server_tls(s), "not usable as a TLS server certificate");
  s = server_settings(ServerTlsSettings::kNone);
  s.cert_chain = ca("missing.pem");
  expect_error(make_server_tls(s), "cannot read \"" + ca("missing.pem") + "\": No such file");
  s = server_settings(ServerTlsSettings::kNone);
  s.cert_chain = ca("root.key");
  expect_error(make_server_tls(s), "no PEM certificate found");
  s = server_settings(ServerTlsSettings::kNone);
  s.key = ca("user-service.pem");
  expect_error(make_server_tls(s), "no usable PEM private key");
  {
    std::string broken = (dir_ / "truncated.pem").string();
    std::string pem = read_text(ca("user-service.pem"));
    std::ofstream(broken) << pem.substr(0, pem.size() / 3);
    s = server_settings(ServerTlsSettings::kNone);
    s.cert_chain = broken;
    expect_error(make_server_tls(s), "bad PEM certificate");
  }
  {
    // Chain out of order: the subordinate first.
    std::string wrong = (dir_ / "wrong_order.pem").string();
    std::ofstream(wrong) << read_text(ca("sub.pem")) << read_text(ca("user-service.leaf.pem"));
    s = server_settings(ServerTlsSettings::kNone);
    s.cert_chain = wrong;
    expect_error(make_server_tls(s), "does not match");  // the key belongs to the second cert
  }
  s = server_settings(ServerTlsSettings::kRequired);
  s.client_ca = ca("sub.pem");  // no root: partial chains are not allowed
  expect_error(make_server_tls(s), "has no root (self-signed) certificate");
  s.client_ca = "";
  expect_error(make_server_tls(s), "no client_ca");

  ClientTlsSettings c = client_settings();
  c.ca = "";
  expect_error(make_client_tls(c), "needs a trust bundle");
  c = client_settings();
  c.key = "";
  expect_error(make_client_tls(c), "needs both cert and key");
  c = client_settings("user-service");  // --server only
  expect_error(make_client_tls(c), "not usable as a TLS client certificate");
  c = client_settings();
  c.ca = "system";
  EXPECT_TRUE(make_client_tls(c));

  ClientTlsSettings nothing_to_check = client_settings();
  nothing_to_check.sni = "";
  auto t = make_client_tls(nothing_to_check);
  ASSERT_TRUE(t);
  auto ssl = (*t)->new_ssl();
  ASSERT_FALSE(ssl);
  EXPECT_NE(ssl.error().find("nothing to verify"), std::string::npos) << ssl.error();
}

// ---------------------------------------------------------------------------------------------
// Handshakes

TEST_F(TlsTest, MutualTlsHandshakeCarriesIdentityAlpnAndSni) {
  auto s = server(server_settings(ServerTlsSettings::kRequired));
  auto c = client(client_settings());
  ASSERT_TRUE(s && c);
  EXPECT_EQ(s->uri_san(), kServerUri);
  Outcome o = connect(*s, *c);
  ASSERT_TRUE(ok(o)) << o.server_error << " / " << o.client_ec.message();
  EXPECT_EQ(o.version, TLS1_3_VERSION);
  EXPECT_EQ(o.server_alpn, "http/1.1");
  EXPECT_EQ(o.client_alpn, "http/1.1");
  EXPECT_EQ(o.sni, "user-service");
  EXPECT_TRUE(o.identity.verified);
  EXPECT_EQ(o.identity.account, "111111111111");
  EXPECT_EQ(o.identity.service, "checkout");
  EXPECT_EQ(o.identity.uri, kClientUri);
  EXPECT_EQ(o.identity.dns, "checkout");

  // The hash is that of the leaf's DER, computed here by the openssl CLI.
  auto [rc, hash] = sh("openssl x509 -in " + ca("checkout.leaf.pem") +
                       " -outform DER | sha256sum | cut -d' ' -f1");
  ASSERT_EQ(rc, 0);
  hash.erase(hash.find_last_not_of("\n") + 1);
  ASSERT_EQ(hash.size(), 64u) << hash;
  EXPECT_EQ(o.xfcc, "By=" + std::string(kServerUri) + ";Hash=" + hash + ";URI=" + kClientUri +
                        ";DNS=checkout;Account=111111111111;Service=checkout");
}

TEST_F(TlsTest, ClientCertificatePolicies) {
  auto required = server(server_settings(ServerTlsSettings::kRequired));
  auto optional = server(server_settings(ServerTlsSettings::kOptional));
  auto none = server(server_settings(ServerTlsSettings::kNone));
  auto anonymous = client(client_settings(""));
  auto with_cert = client(client_settings());
  ASSERT_TRUE(required && optional && none && anonymous && with_cert);

  // Required but absent: the server refuses; the client sees the alert when it reads.
  Outcome o = connect(*required, *anonymous);
  EXPECT_TRUE(o.server_ec);
  EXPECT_NE(o.server_error.find("peer did not return a certificate"), std::string::npos)
      << o.server_error;
  EXPECT_EQ(o.server_detail, "no_client_certificate");
  EXPECT_NE(o.received, "hello");

  // Optional and absent: fine, but no verified identity and no header.
  o = connect(*optional, *anonymous);
  EXPECT_TRUE(ok(o)) << o.server_error;
  EXPECT_FALSE(o.identity.verified);
  EXPECT_EQ(o.xfcc, "");
  // Optional and present: verified.
  o = connect(*optional, *with_cert);
  EXPECT_TRUE(ok(o)) << o.server_error;
  EXPECT_TRUE(o.identity.verified);
  EXPECT_EQ(o.identity.service, "checkout");
  // None: a client certificate is not even asked for.
  o = connect(*none, *with_cert);
  EXPECT_TRUE(ok(o)) << o.server_error;
  EXPECT_FALSE(o.identity.verified);
  EXPECT_EQ(o.identity.account, "");
}

TEST_F(TlsTest, ClientCertificateFailuresHaveReasons) {
  auto s = server(server_settings(ServerTlsSettings::kOptional));
  ASSERT_TRUE(s);
  struct Case {
    const char* dir;
    const char* name;
    const char* reason;
  } cases[] = {
      {"other", "rogue", "unknown_ca"},   // issued by a CA that is not in the bundle
      {"ca", "selfie", "unknown_ca"},     // self-signed
      {"ca", "old", "expired"},           // from the right CA, expired
      {"ca", "future", "not_yet_valid"},  // from the right CA, not yet valid
  };
  for (const Case& k : cases) {
    // make_client_tls refuses expired material, so these clients are built by hand.
    ossl::SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
    std::string dir = (dir_ / k.dir).string();
    ASSERT_EQ(SSL_CTX_use_certificate_chain_file(ctx.get(), (dir + "/" + k.name + ".pem").c_str()),
              1);
    ASSERT_EQ(SSL_CTX_use_PrivateKey_file(ctx.get(), (dir + "/" + k.name + ".key").c_str(),
                                          SSL_FILETYPE_PEM),
              1);
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
    Outcome o = connect(s->asio_context(), SslPtr(SSL_new(ctx.get())));
    EXPECT_TRUE(o.server_ec) << k.name;
    EXPECT_EQ(o.server_reason, k.reason) << k.name << ": " << o.server_error;
    EXPECT_EQ(o.server_detail, k.reason) << k.name;
    EXPECT_NE(o.received, "hello") << k.name;
  }
}

TEST_F(TlsTest, SubordinateMissingFromThePresentedChain) {
  // Trust only the root: the client must present its subordinate.
  ServerTlsSettings ss = server_settings(ServerTlsSettings::kRequired);
  ss.client_ca = ca("root.pem");
  auto s = server(ss);
  ClientTlsSettings leaf_only = client_settings();
  leaf_only.cert = ca("checkout.leaf.pem");
  auto c = client(leaf_only);
  ASSERT_TRUE(s && c);
  Outcome o = connect(*s, *c);
  EXPECT_TRUE(o.server_ec);
  EXPECT_EQ(o.server_reason, "unknown_ca");

  auto full = client(client_settings());
  o = connect(*s, *full);
  EXPECT_TRUE(ok(o)) << o.server_error;
  EXPECT_TRUE(o.identity.verified);

  // The same on the client side: a server presenting its leaf alone to a root-only client.
  ServerTlsSettings bare = server_settings(ServerTlsSettings::kNone);
  bare.cert_chain = ca("user-service.leaf.pem");
  auto bare_server = server(bare);
  ClientTlsSettings root_only = client_settings("");
  root_only.ca = ca("root.pem");
  auto rc = client(root_only);
  ASSERT_TRUE(bare_server && rc);
  o = connect(*bare_server, *rc);
  EXPECT_TRUE(o.client_ec);
  EXPECT_EQ(o.client_reason, "unknown_ca");
}

TEST_F(TlsTest, ServerCertificateFailuresHaveReasons) {
  auto c = client(client_settings(""));
  ASSERT_TRUE(c);
  // make_server_tls refuses broken material, so misbehaving servers are built by hand.
  struct Case {
    std::string chain, key;
    const char* reason;
  } cases[] = {
      {ca("old.pem"), ca("old.key"), "expired"},
      {ca("future.pem"), ca("future.key"), "not_yet_valid"},
      {other("rogue.pem"), other("rogue.key"), "unknown_ca"},
  };
  for (const Case& k : cases) {
    SSL_CTX* raw = SSL_CTX_new(TLS_server_method());
    ASSERT_EQ(SSL_CTX_use_certificate_chain_file(raw, k.chain.c_str()), 1);
    ASSERT_EQ(SSL_CTX_use_PrivateKey_file(raw, k.key.c_str(), SSL_FILETYPE_PEM), 1);
    asio::ssl::context adopted(raw);  // takes ownership of the SSL_CTX
    auto ssl = c->new_ssl("old");
    ASSERT_TRUE(ssl);
    Outcome o = connect(adopted, std::move(*ssl));
    EXPECT_TRUE(o.client_ec) << k.chain;
    EXPECT_EQ(o.client_reason, k.reason) << k.chain;
    EXPECT_NE(o.received, "hello");
  }
}

TEST_F(TlsTest, SanIsCheckedDuringTheHandshake) {
  auto s = server(server_settings(ServerTlsSettings::kNone));
  ASSERT_TRUE(s);
  struct Case {
    std::vector<std::string> verify_san;
    std::string sni;
    bool accepted;
  } cases[] = {
      {{}, "user-service", true},      // default: the SNI
      {{}, "USERS.internal", true},    // case-insensitive
      {{}, "orders.internal", false},  // the SNI is not in the certificate
      {{"users.internal"}, "whatever.example", true},
      {{"*.internal"}, "x", true},
      {{"*.example.com", kServerUri}, "x", true},
      {{"spiffe://222222222222/orders"}, "user-service", false},
      {{"spiffe://222222222222/USER-SERVICE"}, "user-service", false},  // URIs compare exactly
      {{"orders.internal", "*.users.internal"}, "user-service", false},
  };
  for (const Case& k : cases) {
    ClientTlsSettings cs = client_settings("");
    cs.verify_san = k.verify_san;
    cs.sni = k.sni;
    auto c = client(cs);
    ASSERT_TRUE(c);
    Outcome o = connect(*s, *c);
    EXPECT_EQ(ok(o), k.accepted) << k.sni;
    if (!k.accepted) {
      EXPECT_EQ(o.client_reason, "san_mismatch") << k.sni;
      EXPECT_EQ(o.client_detail, "san_mismatch") << k.sni;
      EXPECT_EQ(o.server_detail, "peer_alert") << k.sni;
      EXPECT_TRUE(o.server_ec);  // the server got the alert: nothing was exchanged
    }
  }
}

TEST_F(TlsTest, SanMatchingRules) {
  auto leaf = load_leaf(ca("user-service.leaf.pem"));
  ASSERT_TRUE(leaf);
  X509* x = leaf.get();
  using P = std::vector<std::string>;
  EXPECT_TRUE(san_matches(x, P{"user-service"}));
  EXPECT_TRUE(san_matches(x, P{"User-Service."}));
  EXPECT_TRUE(san_matches(x, P{"users.internal"}));
  EXPECT_TRUE(san_matches(x, P{"*.internal"}));
  EXPECT_FALSE(san_matches(x, P{"*.service"}));
  EXPECT_FALSE(san_matches(x, P{"internal"}));
  EXPECT_FALSE(san_matches(x, P{"*"}));
  EXPECT_FALSE(san_matches(x, P{"*.users.internal"}));
  EXPECT_TRUE(san_matches(x, P{kServerUri}));
  EXPECT_FALSE(san_matches(x, P{"spiffe://222222222222/user-servic"}));
  EXPECT_FALSE(san_matches(x, P{"spiffe://222222222222/user-service/"}));
  EXPECT_FALSE(san_matches(x, P{"user-service.internal"}));
  EXPECT_FALSE(san_matches(x, P{"127.0.0.1"}));
  EXPECT_FALSE(san_matches(x, P{}));
  EXPECT_FALSE(san_matches(nullptr, P{"user-service"}));
  EXPECT_TRUE(san_matches(x, P{"nope", "users.internal"}));

  // A certificate wildcard covers one label, as hostname verification does.
  std::string d = (dir_ / "ca").string();
  ASSERT_EQ(pki_quiet({"issue", d, "--name", "wild", "--account", "123456789012", "--dns",
                       "*.orders.internal", "--out-dir", (dir_ / "wild").string()})
                .first,
            0);
  auto wild = load_leaf(dir_ / "wild" / "wild.leaf.pem");
  ASSERT_TRUE(wild);
  EXPECT_TRUE(san_matches(wild.get(), P{"eu.orders.internal"}));
  EXPECT_TRUE(san_matches(wild.get(), P{"e.orders.internal"}));
  EXPECT_FALSE(san_matches(wild.get(), P{".orders.internal"}));
  EXPECT_TRUE(san_matches(wild.get(), P{"*.orders.internal"}));
  EXPECT_FALSE(san_matches(wild.get(), P{"a.eu.orders.internal"}));
  EXPECT_FALSE(san_matches(wild.get(), P{"orders.internal"}));
}

TEST_F(TlsTest, VerifyFailureReasons) {
  EXPECT_EQ(verify_failure_reason(X509_V_ERR_CERT_HAS_EXPIRED), "expired");
  EXPECT_EQ(verify_failure_reason(X509_V_ERR_CERT_NOT_YET_VALID), "not_yet_valid");
  EXPECT_EQ(verify_failure_reason(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY), "unknown_ca");
  EXPECT_EQ(verify_failure_reason(X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT), "unknown_ca");
  EXPECT_EQ(verify_failure_reason(X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN), "unknown_ca");
  EXPECT_EQ(verify_failure_reason(X509_V_ERR_HOSTNAME_MISMATCH), "san_mismatch");
  EXPECT_EQ(verify_failure_reason(X509_V_ERR_INVALID_PURPOSE), "other");
  EXPECT_EQ(verify_failure_reason(X509_V_OK), "other");
  EXPECT_EQ(handshake_failure_reason(nullptr), "handshake_failed");
}

TEST_F(TlsTest, Tls11AndWeakCiphersAreRefused) {
  auto s = server(server_settings(ServerTlsSettings::kNone));
  ASSERT_TRUE(s);
  ossl::SslCtxPtr old(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_security_level(old.get(), 0);
  ASSERT_EQ(SSL_CTX_set_min_proto_version(old.get(), TLS1_VERSION), 1);
  ASSERT_EQ(SSL_CTX_set_max_proto_version(old.get(), TLS1_1_VERSION), 1);
  ASSERT_EQ(SSL_CTX_set_cipher_list(old.get(), "ALL:@SECLEVEL=0"), 1);
  SSL_CTX_set_verify(old.get(), SSL_VERIFY_NONE, nullptr);
  Outcome o = connect(s->asio_context(), SslPtr(SSL_new(old.get())));
  EXPECT_TRUE(o.client_ec);
  ASSERT_TRUE(o.server_ec);  // the server saw the hello and refused it
  EXPECT_NE(o.server_error.find("unsupported protocol"), std::string::npos) << o.server_error;
  EXPECT_EQ(o.server_detail, "protocol_version");
  EXPECT_EQ(o.client_detail, "peer_alert");

  // TLS 1.2 with only CBC (no AEAD) suites: no shared cipher.
  ossl::SslCtxPtr cbc(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_max_proto_version(cbc.get(), TLS1_2_VERSION);
  ASSERT_EQ(SSL_CTX_set_cipher_list(cbc.get(), "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA"), 1);
  SSL_CTX_set_verify(cbc.get(), SSL_VERIFY_NONE, nullptr);
  o = connect(s->asio_context(), SslPtr(SSL_new(cbc.get())));
  ASSERT_TRUE(o.server_ec);
  EXPECT_NE(o.server_error.find("no shared cipher"), std::string::npos) << o.server_error;
  EXPECT_EQ(o.server_detail, "no_shared_cipher");

  // TLS 1.2 with an AEAD suite works.
  ossl::SslCtxPtr tls12(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_max_proto_version(tls12.get(), TLS1_2_VERSION);
  SSL_CTX_set_verify(tls12.get(), SSL_VERIFY_NONE, nullptr);
  o = connect(s->asio_context(), SslPtr(SSL_new(tls12.get())));
  EXPECT_TRUE(ok(o)) << o.server_error;
  EXPECT_EQ(o.version, TLS1_2_VERSION);
}

TEST_F(TlsTest, AlpnPicksOurPreferenceAndNoOverlapIsNotFatal) {
  ServerTlsSettings ss = server_settings(ServerTlsSettings::kNone);
  ss.alpn = {"h2", "http/1.1"};
  auto s = server(ss);
  ClientTlsSettings cs = client_settings("");
  cs.alpn = {"http/1.1", "h2"};
  auto both = client(cs);
  cs.alpn = {"h3"};
  auto unknown = client(cs);
  cs.alpn = {};
  auto none = client(cs);
  ASSERT_TRUE(s && both && unknown && none);
  Outcome o = connect(*s, *both);
  ASSERT_TRUE(ok(o));
  EXPECT_EQ(o.server_alpn, "h2");  // the server's order wins
  EXPECT_EQ(o.client_alpn, "h2");
  o = connect(*s, *unknown);
  ASSERT_TRUE(ok(o));
  EXPECT_EQ(o.server_alpn, "");
  o = connect(*s, *none);
  ASSERT_TRUE(ok(o));
  EXPECT_EQ(o.client_alpn, "");
}

TEST_F(TlsTest, SessionsResumeAcrossPooledConnections) {
  auto s = server(server_settings(ServerTlsSettings::kRequired));
  ASSERT_TRUE(s);
  for (uint16_t version : {TLS1_3_VERSION, TLS1_2_VERSION}) {
    ClientSessionCache cache;
    auto c = client(client_settings());
    ASSERT_TRUE(c);
    // Restricting the client to one version changes only this test's copy of the SSL_CTX.
    SSL_CTX_set_max_proto_version(c->native(), version);
    Outcome first = connect(*s, *c, {}, &cache);
    ASSERT_TRUE(ok(first)) << first.server_error;
    EXPECT_FALSE(first.client_reused);
    EXPECT_EQ(first.version, version);
    EXPECT_EQ(cache.size(), 1u);
    Outcome second = connect(*s, *c, {}, &cache);
    ASSERT_TRUE(ok(second)) << second.server_error;
    EXPECT_TRUE(second.client_reused) << version;
    EXPECT_TRUE(second.server_reused) << version;
    // The caller's identity survives resumption (the session keeps the verified peer).
    EXPECT_TRUE(second.identity.verified);
    EXPECT_EQ(second.identity.service, "checkout");
    EXPECT_EQ(second.xfcc, first.xfcc);

    // Another SNI is another cache entry: a full handshake.
    Outcome other_name = connect(*s, *c, "users.internal", &cache);
    ASSERT_TRUE(ok(other_name));
    EXPECT_FALSE(other_name.client_reused);
    EXPECT_EQ(cache.size(), 2u);

    // Sessions of a replaced context (a reload) are not offered.
    auto reloaded = client(client_settings());
    SSL_CTX_set_max_proto_version(reloaded->native(), version);
    Outcome after_reload = connect(*s, *reloaded, {}, &cache);
    ASSERT_TRUE(ok(after_reload));
    EXPECT_FALSE(after_reload.client_reused);

    cache.forget("127.0.0.1:443", "user-service");
    Outcome forgotten = connect(*s, *reloaded, {}, &cache);
    EXPECT_FALSE(forgotten.client_reused);
  }

  // A new server context (new material, new ticket keys) does not resume old sessions.
  ClientSessionCache cache;
  auto c = client(client_settings());
  ASSERT_TRUE(ok(connect(*s, *c, {}, &cache)));
  auto s2 = server(server_settings(ServerTlsSettings::kRequired));
  Outcome o = connect(*s2, *c, {}, &cache);
  ASSERT_TRUE(ok(o));
  EXPECT_FALSE(o.server_reused);
}

// A plaintext HTTP client on a TLS port: the handshake fails at once (no hang) and says why.
TEST_F(TlsTest, PlaintextClientOnATlsPortFailsFast) {
  auto s = server(server_settings(ServerTlsSettings::kNone));
  ASSERT_TRUE(s);
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  tcp::socket ss(io), cs(io);
  asio::ssl::stream<tcp::socket&> server_stream(ss, s->asio_context());
  boost::system::error_code server_ec;
  std::string reason;
  bool done = false;
  acceptor.async_accept(ss, [&](const boost::system::error_code&) {
    server_stream.async_handshake(
        asio::ssl::stream_base::server, [&](const boost::system::error_code& ec) {
          server_ec = ec;
          reason = handshake_failure_reason(server_stream.native_handle(), ec);
          done = true;
          ss.close();
        });
  });
  cs.connect(acceptor.local_endpoint());
  asio::write(cs, asio::buffer(std::string_view("GET / HTTP/1.1\r\nHost: x\r\n\r\n")));
  auto start = std::chrono::steady_clock::now();
  io.run_for(std::chrono::seconds(5));
  ASSERT_TRUE(done);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  EXPECT_NE(server_ec.message().find("http request"), std::string::npos) << server_ec.message();
  EXPECT_EQ(reason, "not_tls");
}

TEST_F(TlsTest, SniffTellsPlaintextFromTls) {
  auto sniff = [](std::string_view s) {
    return sniff_client_hello(
        std::span(reinterpret_cast<const unsigned char*>(s.data()), s.size()));
  };
  EXPECT_EQ(sniff("GET / HTTP/1.1\r\n"), Sniff::kNotTls);
  EXPECT_EQ(sniff(""), Sniff::kNeedMore);
  EXPECT_EQ(sniff("\x16"), Sniff::kNeedMore);
  EXPECT_EQ(sniff("\x16\x03"), Sniff::kNeedMore);
  EXPECT_EQ(sniff(std::string_view("\x16\x03\x01\x02\x00", 5)), Sniff::kTls);
  EXPECT_EQ(sniff("\x16\x02\x01"), Sniff::kNotTls);
  EXPECT_EQ(sniff(std::string_view("\x80\x2e\x01", 3)), Sniff::kNotTls);  // SSLv2 hello
}

// ---------------------------------------------------------------------------------------------
// Identity and authorization

TEST_F(TlsTest, IdentityTemplates) {
  auto leaf = load_leaf(ca("checkout.leaf.pem"));
  ASSERT_TRUE(leaf);
  Identity id = extract_identity(leaf.get(), IdentityRules{});
  EXPECT_FALSE(id.verified);  // only the handshake can say
  EXPECT_EQ(id.account, "111111111111");
  EXPECT_EQ(id.service, "checkout");
  EXPECT_EQ(id.uri, kClientUri);
  EXPECT_EQ(id.dns, "checkout");
  EXPECT_EQ(xfcc_value(id, leaf.get()), "");  // unverified: no header

  id = extract_identity(leaf.get(), IdentityRules{"spiffe://{service}/{account}"});
  EXPECT_EQ(id.account, "checkout");
  EXPECT_EQ(id.service, "111111111111");
  id = extract_identity(leaf.get(), IdentityRules{"spiffe://111111111111/{service}{account}"});
  EXPECT_EQ(id.account, "");  // invalid template: nothing matches
  id = extract_identity(leaf.get(), IdentityRules{"spiffe://corp.example/{account}/{service}"});
  EXPECT_EQ(id.account, "");
  EXPECT_EQ(id.service, "");
  EXPECT_EQ(id.uri, kClientUri);  // still reported, for logs
  EXPECT_EQ(id.dns, "checkout");

  EXPECT_EQ(check_uri_template("spiffe://{account}/{service}"), std::nullopt);
  EXPECT_EQ(check_uri_template("spiffe://td/ns/{account}/sa/{service}"), std::nullopt);
  EXPECT_TRUE(check_uri_template("spiffe://{account}"));
  EXPECT_TRUE(check_uri_template("spiffe://{account}/{service}/{service}"));
  EXPECT_TRUE(check_uri_template("spiffe://{account}{service}"));
  EXPECT_TRUE(check_uri_template("spiffe://{account}/{service}/{x}"));
  EXPECT_TRUE(check_uri_template("spiffe://{account}/ {service}"));
}

// The config loader validates identity.uri_template with its own copy of the rule (config does
// not depend on tls); both must agree.
TEST_F(TlsTest, ConfigAndTlsAgreeOnUriTemplates) {
  const char* templates[] = {
      "spiffe://{account}/{service}",
      "spiffe://td/ns/{account}/sa/{service}",
      "spiffe://{service}.{account}",
      "spiffe://{account}",
      "{account}{service}",
      "spiffe://{account}/{service}/{service}",
      "spiffe://{account}/{svc}",
      "spiffe://{account}/ {service}",
      "spiffe://{account}/{service}}",
      "urn:aws:{account}:{service}",
  };
  int valid = 0;
  for (const char* t : templates) {
    std::string yaml =
        "listeners:\n  - name: in\n    address: 127.0.0.1:1\n    role: inbound\n"
        "    identity: {uri_template: \"" +
        std::string(t) +
        "\"}\n    routes: [{cluster: app}]\n"
        "clusters:\n  - name: app\n    endpoints: [127.0.0.1:2]\n";
    config::LoadResult r = config::load_string(yaml, "t.yaml");
    std::optional<std::string> problem = check_uri_template(t);
    EXPECT_EQ(r.ok(), !problem) << t;
    if (problem && !r.errors.empty()) {
      EXPECT_EQ(r.errors[0].message, "uri_template: " + *problem) << t;
    }
    valid += r.ok();
  }
  EXPECT_EQ(valid, 4);
}

TEST_F(TlsTest, XfccQuotesOrDropsUnsafeValues) {
  auto leaf = load_leaf(ca("checkout.leaf.pem"));
  ASSERT_TRUE(leaf);
  Identity id;
  id.verified = true;
  id.uri = "spiffe://a/b;c=d";
  id.dns = "x\r\ny: z";
  id.account = "111111111111";
  id.service = "a\"b";
  std::string hash = ossl::sha256_hex(leaf.get());
  EXPECT_EQ(xfcc_value(id, leaf.get(), "spiffe://me"),
            "By=spiffe://me;Hash=" + hash +
                ";URI=\"spiffe://a/b;c=d\";Account=111111111111;Service=\"a\\\"b\"");
}

TEST_F(TlsTest, Authorization) {
  Identity caller;
  caller.verified = true;
  caller.account = "111111111111";
  caller.service = "checkout";
  AuthzPolicy by_account{false, {"111111111111"}, {}};
  AuthzPolicy by_service{false, {}, {"checkout"}};
  AuthzPolicy by_both{false, {}, {"111111111111/checkout"}};
  AuthzPolicy wrong_account{false, {"333333333333"}, {"333333333333/checkout"}};
  AuthzPolicy any{true, {}, {}};
  EXPECT_TRUE(authorize(caller, by_account).allowed);
  EXPECT_TRUE(authorize(caller, by_service).allowed);
  EXPECT_TRUE(authorize(caller, by_both).allowed);
  EXPECT_TRUE(authorize(caller, any).allowed);
  AuthzDecision d = authorize(caller, wrong_account);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason, "not_allowed");

  Identity unverified = caller;
  unverified.verified = false;
  d = authorize(unverified, any);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason, "no_verified_identity");

  Identity no_template_match;
  no_template_match.verified = true;
  EXPECT_TRUE(authorize(no_template_match, any).allowed);
  EXPECT_FALSE(authorize(no_template_match, by_service).allowed);
}

// ---------------------------------------------------------------------------------------------
// Hot reload

// Replaces `to` with `from` atomically, as deployment tools do.
void replace(const std::string& from, const std::string& to) {
  std::string tmp = to + ".new";
  fs::copy_file(from, tmp, fs::copy_options::overwrite_existing);
  fs::rename(tmp, to);
}

TEST_F(TlsTest, WatcherPicksUpRotationAndRefusesBrokenFiles) {
  fs::path w = dir_ / "watched";
  fs::create_directories(w);
  std::string d = (dir_ / "ca").string();
  auto issue = [&](const std::string& out, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"issue",     d,
                                     "--name",    "rot",
                                     "--account", "222222222222",
                                     "--out-dir", (dir_ / out).string()};
    args.insert(args.end(), extra.begin(), extra.end());
    ASSERT_EQ(pki_quiet(args).first, 0);
  };
  issue("v1", {"--days", "10"});
  issue("v2", {"--days", "20"});
  issue("v3", {"--expired"});
  std::string cert = (w / "rot.pem").string(), key = (w / "rot.key").string();
  replace((dir_ / "v1/rot.pem").string(), cert);
  replace((dir_ / "v1/rot.key").string(), key);

  asio::io_context io;
  std::vector<std::shared_ptr<const ServerTls>> updates;
  std::vector<std::string> errors;
  ServerTlsSettings settings;
  settings.cert_chain = cert;
  settings.key = key;
  ServerTlsWatcher::Options options;
  options.interval = std::chrono::milliseconds(50);
  options.on_update = [&](std::shared_ptr<const ServerTls> t) { updates.push_back(t); };
  options.on_error = [&](const std::string& e) { errors.push_back(e); };
  auto started = ServerTlsWatcher::start(io.get_executor(), settings, options);
  ASSERT_TRUE(started) << started.error();
  auto& watcher = **started;
  auto first = watcher.current();
  ASSERT_TRUE(first);
  ASSERT_TRUE(watcher.not_after());
  int64_t v1_expiry = *watcher.not_after();
  EXPECT_NEAR(static_cast<double>(v1_expiry - std::time(nullptr)), 10.0 * 86400, 60);
  EXPECT_EQ(watcher.files(), (std::vector<std::string>{cert, key}));

  // Runs the loop until `done` or 5 s.
  auto run_until = [&](auto done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io.run_for(std::chrono::milliseconds(20));
    }
    return done();
  };

  // Unchanged files: nothing happens.
  io.run_for(std::chrono::milliseconds(200));
  EXPECT_TRUE(updates.empty());
  EXPECT_TRUE(errors.empty());

  // Rotation: cert and key replaced one after the other.
  replace((dir_ / "v2/rot.pem").string(), cert);
  replace((dir_ / "v2/rot.key").string(), key);
  ASSERT_TRUE(run_until([&] { return !updates.empty(); }));
  EXPECT_TRUE(errors.empty()) << errors.front();
  EXPECT_EQ(watcher.current(), updates.back());
  EXPECT_NE(watcher.current(), first);
  EXPECT_NEAR(static_cast<double>(*watcher.not_after() - std::time(nullptr)), 20.0 * 86400, 60);
  EXPECT_EQ(watcher.reloads(), 1u);
  // New handshakes use the new material; the old context still works for whoever holds it.
  ClientTlsSettings any_name = client_settings("");
  any_name.sni = "rot";
  auto rot_client = client(any_name);
  ASSERT_TRUE(rot_client);
  EXPECT_TRUE(ok(connect(*watcher.current(), *rot_client)));
  EXPECT_TRUE(ok(connect(*first, *rot_client)));
  auto v2 = watcher.current();

  // Broken PEM: refused, the v2 material stays.
  {
    std::string garbage = (dir_ / "garbage.pem").string();
    std::ofstream(garbage) << "-----BEGIN CERTIFICATE-----\nnot base64 at all\n";
    replace(garbage, cert);
  }
  ASSERT_TRUE(run_until([&] { return !errors.empty(); }));
  EXPECT_NE(errors.back().find("bad PEM certificate"), std::string::npos) << errors.back();
  EXPECT_EQ(watcher.current(), v2);
  EXPECT_EQ(watcher.failures(), 1u);
  // The same broken files are not retried on every poll.
  io.run_for(std::chrono::milliseconds(200));
  EXPECT_EQ(watcher.failures(), 1u);

  // A key that does not match: refused.
  replace((dir_ / "v2/rot.pem").string(), cert);
  replace((dir_ / "v1/rot.key").string(), key);
  ASSERT_TRUE(run_until([&] { return errors.size() >= 2; }));
  EXPECT_NE(errors.back().find("does not match"), std::string::npos) << errors.back();
  EXPECT_EQ(watcher.current(), v2);

  // An expired pair: refused.
  replace((dir_ / "v3/rot.pem").string(), cert);
  replace((dir_ / "v3/rot.key").string(), key);
  ASSERT_TRUE(run_until([&] { return errors.size() >= 3; }));
  EXPECT_NE(errors.back().find("expired at"), std::string::npos) << errors.back();
  EXPECT_EQ(watcher.current(), v2);
  EXPECT_EQ(updates.size(), 1u);

  // A file that disappears: refused too (a rename-based deploy in the middle).
  fs::remove(key);
  ASSERT_TRUE(run_until([&] { return errors.size() >= 4; }));
  EXPECT_NE(errors.back().find("No such file"), std::string::npos) << errors.back();

  // Good material again: accepted.
  replace((dir_ / "v1/rot.pem").string(), cert);
  replace((dir_ / "v1/rot.key").string(), key);
  ASSERT_TRUE(run_until([&] { return updates.size() >= 2; }));
  EXPECT_EQ(*watcher.not_after(), v1_expiry);
  EXPECT_EQ(watcher.reloads(), 2u);
  EXPECT_EQ(watcher.failures(), 4u);
}

TEST_F(TlsTest, ClientWatcherAndStartErrors) {
  asio::io_context io;
  ClientTlsWatcher::Options options;
  auto started = ClientTlsWatcher::start(io.get_executor(), client_settings(), options);
  ASSERT_TRUE(started) << started.error();
  EXPECT_EQ((*started)->files(),
            (std::vector<std::string>{ca("bundle.pem"), ca("checkout.pem"), ca("checkout.key")}));
  ASSERT_TRUE((*started)->not_after());
  auto anonymous = ClientTlsWatcher::start(io.get_executor(), client_settings(""), options);
  ASSERT_TRUE(anonymous);
  EXPECT_FALSE((*anonymous)->not_after());

  ServerTlsSettings broken = server_settings(ServerTlsSettings::kNone);
  broken.key = ca("checkout.key");
  auto refused = ServerTlsWatcher::start(io.get_executor(), broken, {});
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().find("does not match"), std::string::npos);
  // Destroying watchers with a pending timer is safe and runs no callback.
  started->reset();
  anonymous->reset();
  io.run_for(std::chrono::milliseconds(50));
}

}  // namespace
}  // namespace outrigger::tls
