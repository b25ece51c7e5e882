// TLS contexts for the data path: server (termination, optional mTLS) and client (origination
// with a pinned trust bundle and SAN checks), built from files into immutable SSL_CTX objects.
//
// Thread affinity: ServerTls and ClientTls are immutable and shared: built on the main thread,
// posted to workers as shared_ptr<const ...>, used from any number of threads at once (OpenSSL's
// SSL_CTX is safe for concurrent SSL_new). ClientSessionCache is worker-local.
//
// Using them with Boost.Asio (boost 1.81 has `ssl::context(native_handle_type)`, which adopts an
// SSL_CTX*, and `ssl::stream(next_layer, SSL*)`, which adopts an SSL*):
//
//   // inbound
//   boost::asio::ssl::stream<tcp::socket&> s(socket, server_tls->asio_context());
//   s.async_handshake(boost::asio::ssl::stream_base::server, ...);
//   // outbound
//   auto ssl = client_tls->new_ssl(endpoint_sni, &worker_sessions, "10.0.0.7:443");
//   if (!ssl) -> 503 (ssl.error())
//   boost::asio::ssl::stream<tcp::socket&> s(socket, ssl->release());  // the stream owns it
//   s.async_handshake(boost::asio::ssl::stream_base::client, ...);
//   on failure: reason = handshake_failure_reason(s.native_handle())
//
// A connection should keep the shared_ptr it started with (it is cheap); the SSL_CTX is
// reference counted by OpenSSL as well, so a reload never pulls material from under a handshake.
#pragma once

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/ssl/context.hpp>
#include <boost/system/error_code.hpp>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace outrigger::tls {

struct SslDeleter {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
using SslPtr = std::unique_ptr<SSL, SslDeleter>;

// ---- server (termination) ----

struct ServerTlsSettings {
  std::string cert_chain;  // PEM: leaf first, then intermediates (not the root)
  std::string key;         // PEM private key of the leaf
  std::string client_ca;   // PEM trust bundle for client certificates (roots + subordinates)
  enum ClientCert { kNone, kOptional, kRequired };
  ClientCert client_cert = kNone;  // kOptional: a presented certificate must verify; none is fine
  std::vector<std::string> alpn = {"http/1.1"};  // our preference order
};

class ServerTls {
 public:
  using Settings = ServerTlsSettings;
  struct Passkey {
    explicit Passkey() = default;
  };
  ServerTls(Passkey, SSL_CTX* adopted, Settings settings, int64_t not_after, std::string uri_san);

  // For `ssl::stream<...>(socket, asio_context())`. Mutable only because Asio's constructor takes
  // a non-const reference; streams only call SSL_new on it.
  boost::asio::ssl::context& asio_context() const { return ctx_; }
  SSL_CTX* native() const { return ctx_.native_handle(); }
  const Settings& settings() const { return settings_; }
  // The leaf's notAfter, seconds since the epoch (for the expiry metric).
  int64_t not_after() const { return not_after_; }
  // Our own URI SAN (first one), for the `By=` element of the forwarded client certificate.
  const std::string& uri_san() const { return uri_san_; }

 private:
  mutable boost::asio::ssl::context ctx_;
  Settings settings_;
  int64_t not_after_;
  std::string uri_san_;
};

// TLS 1.2 and 1.3 only; ECDHE with AES-GCM or ChaCha20-Poly1305; stateless session tickets;
// ALPN chosen by our preference; client certificates verified against client_ca with no partial
// chains (the root must be in the bundle). Refused at load: unreadable or bad PEM, a key that does
// not match the leaf, an expired (or more than 5 minutes not-yet-valid) leaf, a leaf not usable
// for TLS servers (extended key usage), a trust bundle without a self-signed root.
std::expected<std::shared_ptr<const ServerTls>, std::string> make_server_tls(
    const ServerTlsSettings& settings);

// ---- client (origination) ----

struct ClientTlsSettings {
  std::string ca;    // PEM trust bundle, or "system" for the system store
  std::string cert;  // optional client certificate chain (mTLS); with key
  std::string key;
  std::string sni;  // default SNI; new_ssl() may override per endpoint
  // Accepted peer names: exact DNS ("users.internal"), one-label wildcard ("*.example.com"),
  // exact URI ("spiffe://222222222222/user-service"), or an IP literal. Empty: the SNI of the
  // connection, as an exact DNS name (certificate wildcards honoured).
  std::vector<std::string> verify_san;
  std::vector<std::string> alpn = {"http/1.1"};
};

class ClientSessionCache;

class ClientTls {
 public:
  using Settings = ClientTlsSettings;
  struct Passkey {
    explicit Passkey() = default;
  };
  ClientTls(Passkey, SSL_CTX* adopted, Settings settings, std::optional<int64_t> not_after,
            uint64_t generation);

  // A new SSL for one outbound connection. sni: overrides settings().sni when not empty (an IP
  // literal is never sent as SNI). sessions/endpoint_key: when given, a session stored for
  // (endpoint_key, sni) by an earlier connection is offered, and the one this connection gets is
  // stored there. Fails when there is neither an SNI nor verify_san (nothing to check the peer
  // against): never a silent downgrade.
  std::expected<SslPtr, std::string> new_ssl(std::string_view sni = {},
                                             ClientSessionCache* sessions = nullptr,
                                             std::string_view endpoint_key = {}) const;

  boost::asio::ssl::context& asio_context() const { return ctx_; }
  SSL_CTX* native() const { return ctx_.native_handle(); }
  const Settings& settings() const { return settings_; }
  // notAfter of our client certificate, when there is one.
  std::optional<int64_t> not_after() const { return not_after_; }
  // Distinguishes contexts, so sessions of replaced material are never resumed.
  uint64_t generation() const { return generation_; }

 private:
  mutable boost::asio::ssl::context ctx_;
  Settings settings_;
  std::optional<int64_t> not_after_;
  uint64_t generation_;
};

// Verification as for the server side (no partial chains; the root must be in `ca`), plus the
// SAN check of ClientTlsSettings::verify_san, which fails the handshake itself with
// X509_V_ERR_HOSTNAME_MISMATCH so that no request byte is ever written to a wrong peer.
std::expected<std::shared_ptr<const ClientTls>, std::string> make_client_tls(
    const ClientTlsSettings& settings);

// Remembers the newest resumable session per (endpoint, SNI) so that the next pooled connection
// resumes instead of doing a full handshake. How to use it: one cache per worker (for all
// clusters, or one per cluster); pass it with an endpoint key ("10.0.0.7:443") to
// ClientTls::new_ssl; nothing else: sessions arrive through OpenSSL's new-session callback (for
// TLS 1.3 after the handshake, when the connection first reads), and a session stored under an
// older ClientTls (before a reload) is never offered. Call forget() after a failed handshake.
//
// Thread affinity: worker-local. Connections holding SSLs that point at the cache may outlive
// it safely (they hold a weak reference).
class ClientSessionCache {
 public:
  explicit ClientSessionCache(size_t max_entries = 1024);
  ~ClientSessionCache();
  ClientSessionCache(const ClientSessionCache&) = delete;
  ClientSessionCache& operator=(const ClientSessionCache&) = delete;

  size_t size() const;
  void forget(std::string_view endpoint_key, std::string_view sni);
  void clear();

  struct State;

 private:
  friend class ClientTls;
  std::shared_ptr<State> state_;
};

// ---- checks and classification ----

// Whether any SAN of `peer` matches any pattern (see ClientTlsSettings::verify_san). DNS names
// compare case-insensitively, a trailing dot ignored; "*.example.com" matches exactly one extra
// label ("a.example.com", not "a.b.example.com" nor "example.com"); a pattern matches a
// certificate wildcard SAN the way hostname verification does ("a.example.com" matches a SAN
// "*.example.com"); URIs compare exactly. The subject CN is never consulted.
bool san_matches(X509* peer, const std::vector<std::string>& patterns);

// "expired", "not_yet_valid", "unknown_ca", "san_mismatch" or "other" for a verify result
// (SSL_get_verify_result). X509_V_OK gives "other".
std::string_view verify_failure_reason(long x509_verify_result);

// For a failed handshake: the verify reason when certificate verification failed, else
// "handshake_failed". (Timeouts are the caller's to name: "handshake_timeout".)
std::string_view handshake_failure_reason(const SSL* ssl);
// The same, refined by the handshake's error for counters by reason: "no_client_certificate"
// (required but not sent), "protocol_version" (e.g. TLS 1.1), "no_shared_cipher", "not_tls"
// (plaintext on a TLS port), "peer_alert" (the peer refused us, e.g. our certificate), "eof"
// (closed mid-handshake), else "handshake_failed".
std::string_view handshake_failure_reason(const SSL* ssl, const boost::system::error_code& ec);

// What the first bytes of a connection on a TLS port look like: a TLS record carrying a
// handshake (0x16 0x03 0x0X), not TLS (e.g. "GET / HTTP/1.1"), or too few bytes to tell.
enum class Sniff { kTls, kNotTls, kNeedMore };
Sniff sniff_client_hello(std::span<const unsigned char> first_bytes);

// The negotiated ALPN protocol, "" when none.
std::string_view negotiated_alpn(const SSL* ssl);

}  // namespace outrigger::tls
