#include "proxy/tls/context.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <cstring>
#include <ctime>
#include <unordered_map>

#include "proxy/tls/ossl.h"

namespace outrigger::tls {
namespace {

// TLS 1.2: forward secrecy and AEAD only. TLS 1.3: the three suites every peer implements.
constexpr const char* kCiphers12 =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr const char* kSuites13 =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
constexpr const char* kGroups = "X25519:P-256:P-384";
// How far in the future a leaf's notBefore may be and still load (clock skew between the CA and
// us); beyond it the material is refused, as peers would refuse it too.
constexpr int64_t kNotBeforeSkew = 300;
constexpr long kSessionLifetime = 3600;  // seconds a ticket stays resumable
constexpr int kVerifyDepth = 5;

// Per-SSL_CTX data, owned by the SSL_CTX (freed with it), so callbacks never depend on the
// lifetime of the ServerTls/ClientTls wrapper.
struct CtxData {
  std::vector<std::string> alpn;
  std::vector<std::string> verify_san;
  uint64_t generation = 0;
};

// Per-SSL data of outbound connections, owned by the SSL.
struct SslData {
  std::string sni;
  std::weak_ptr<ClientSessionCache::State> cache;
  std::string cache_key;
  uint64_t generation = 0;
};

void free_ctx_data(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<CtxData*>(ptr);
}
void free_ssl_data(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<SslData*>(ptr);
}

// Our own ex_data slots: index 0 ("app data") belongs to Boost.Asio, which deletes whatever it
// finds there.
int ctx_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, free_ctx_data);
  return index;
}
int ssl_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, free_ssl_data);
  return index;
}

CtxData* ctx_data(const SSL* ssl) {
  return static_cast<CtxData*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_index()));
}
SslData* ssl_data(const SSL* ssl) {
  return static_cast<SslData*>(SSL_get_ex_data(ssl, ssl_index()));
}

std::atomic<uint64_t> next_generation{1};

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string_view strip_dot(std::string_view s) {
  if (!s.empty() && s.back() == '.') s.remove_suffix(1);
  return s;
}

bool is_ip_literal(const std::string& s, unsigned char* out, size_t* len) {
  if (inet_pton(AF_INET, s.c_str(), out) == 1) {
    *len = 4;
    return true;
  }
  if (inet_pton(AF_INET6, s.c_str(), out) == 1) {
    *len = 16;
    return true;
  }
  return false;
}

bool is_ip_literal(const std::string& s) {
  unsigned char buf[16];
  size_t len = 0;
  return is_ip_literal(s, buf, &len);
}

// A SAN string as a view, or nullopt when it embeds a NUL (an old spoofing trick).
std::optional<std::string_view> san_text(const ASN1_STRING* s) {
  const char* data = reinterpret_cast<const char*>(ASN1_STRING_get0_data(s));
  size_t len = static_cast<size_t>(ASN1_STRING_length(s));
  if (data == nullptr || std::memchr(data, '\0', len) != nullptr) return std::nullopt;
  return std::string_view(data, len);
}

// wildcard_suffix is ".example.com" (the '*' removed); name is lower case without trailing dot.
// The left label of a wildcard may not be
// empty and may not contain another '*'.
bool wildcard_covers(std::string_view wildcard_suffix, std::string_view name) {
  if (name.size() <= wildcard_suffix.size()) return false;
  if (!name.ends_with(wildcard_suffix)) return false;
  std::string_view label = name.substr(0, name.size() - wildcard_suffix.size());
  return !label.empty() && label.find('.') == std::string_view::npos &&
         label.find('*') == std::string_view::npos;
}

bool dns_matches(std::string_view pattern_raw, std::string_view san_raw) {
  std::string pattern = lower(strip_dot(pattern_raw));
  std::string san = lower(strip_dot(san_raw));
  if (pattern.empty() || san.empty()) return false;
  if (pattern == san) return true;
  if (pattern.starts_with("*.")) return wildcard_covers(std::string_view(pattern).substr(1), san);
  if (san.starts_with("*.")) return wildcard_covers(std::string_view(san).substr(1), pattern);
  return false;
}

void set_common_options(SSL_CTX* ctx) {
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  // Present exactly the configured chain: no completing it from the trust store, which would
  // hide a chain file that lacks its subordinate until the day the bundle changes.
  SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);
}

std::optional<std::string> set_ciphers(SSL_CTX* ctx) {
  if (SSL_CTX_set_cipher_list(ctx, kCiphers12) != 1 ||
      SSL_CTX_set_ciphersuites(ctx, kSuites13) != 1 ||
      SSL_CTX_set1_groups_list(ctx, kGroups) != 1) {
    return "cannot set the cipher list: " + ossl::take_errors();
  }
  return std::nullopt;
}

std::expected<std::vector<unsigned char>, std::string> alpn_wire(
    const std::vector<std::string>& protocols) {
  std::vector<unsigned char> wire;
  for (const std::string& p : protocols) {
    if (p.empty() || p.size() > 255) {
      return std::unexpected("alpn: invalid protocol name \"" + p + "\"");
    }
    wire.push_back(static_cast<unsigned char>(p.size()));
    wire.insert(wire.end(), p.begin(), p.end());
  }
  return wire;
}

// Our preference order wins; no overlap means no ALPN, not a failed handshake.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void* arg) {
  const auto* data = static_cast<const CtxData*>(arg);
  for (const std::string& ours : data->alpn) {
    for (unsigned int i = 0; i < inlen;) {
      unsigned int len = in[i];
      if (i + 1 + len > inlen) break;
      if (len == ours.size() && std::memcmp(in + i + 1, ours.data(), len) == 0) {
        *out = in + i + 1;
        *outlen = static_cast<unsigned char>(len);
        return SSL_TLSEXT_ERR_OK;
      }
      i += 1 + len;
    }
  }
  return SSL_TLSEXT_ERR_NOACK;
}

struct LoadedChain {
  int64_t not_after = 0;
  std::string uri_san;
  std::string digest_input;  // the PEM texts, for the session id context
};

std::string first_uri_san(X509* cert) {
  ossl::GeneralNamesPtr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return {};
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    if (gn->type != GEN_URI) continue;
    if (auto text = san_text(gn->d.uniformResourceIdentifier)) return std::string(*text);
  }
  return {};
}

// Installs the certificate chain and key into ctx after checking what peers would check.
std::expected<LoadedChain, std::string> install_chain(SSL_CTX* ctx, const std::string& cert_path,
                                                      const std::string& key_path, int purpose,
                                                      std::string_view use) {
  auto pem = ossl::read_file(cert_path);
  if (!pem) return std::unexpected(pem.error());
  auto certs = ossl::parse_certs(*pem, "certificate \"" + cert_path + "\"");
  if (!certs) return std::unexpected(certs.error());
  auto key = ossl::load_key(key_path);
  if (!key) return std::unexpected(key.error());
  X509* leaf = (*certs)[0].get();
  std::string where = "certificate \"" + cert_path + "\"";
  if (X509_check_private_key(leaf, key->get()) != 1) {
    ERR_clear_error();
    return std::unexpected("key \"" + key_path + "\" does not match " + where);
  }
  int64_t now = static_cast<int64_t>(std::time(nullptr));
  LoadedChain loaded;
  loaded.not_after = ossl::not_after(leaf);
  if (loaded.not_after <= now) {
    return std::unexpected(where + " expired at " + ossl::format_time(loaded.not_after));
  }
  if (int64_t nb = ossl::not_before(leaf); nb > now + kNotBeforeSkew) {
    return std::unexpected(where + " is not valid until " + ossl::format_time(nb));
  }
  if (X509_check_purpose(leaf, purpose, 0) != 1) {
    ERR_clear_error();
    return std::unexpected(where + " is not usable as a TLS " + std::string(use) +
                           " certificate (extended key usage)");
  }
  for (size_t i = 1; i < certs->size(); ++i) {
    if (X509_check_issued((*certs)[i].get(), (*certs)[i - 1].get()) != X509_V_OK) {
      return std::unexpected(where + ": certificate " + std::to_string(i + 1) +
                             " did not issue certificate " + std::to_string(i) +
                             " (the chain must be leaf first, then each issuer)");
    }
  }
  if (SSL_CTX_use_certificate(ctx, leaf) != 1 || SSL_CTX_use_PrivateKey(ctx, key->get()) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    return std::unexpected("cannot use " + where + ": " + ossl::take_errors());
  }
  for (size_t i = 1; i < certs->size(); ++i) {
    if (SSL_CTX_add1_chain_cert(ctx, (*certs)[i].get()) != 1) {
      return std::unexpected("cannot use " + where + ": " + ossl::take_errors());
    }
  }
  loaded.uri_san = first_uri_san(leaf);
  loaded.digest_input = *pem;
  return loaded;
}

// Adds every certificate of a bundle to the context's verification store. A bundle must hold at
// least one unexpired self-signed root, since chains must end at a root in the bundle.
std::expected<std::string, std::string> install_trust(SSL_CTX* ctx, const std::string& path,
                                                      bool advertise_to_clients) {
  auto pem = ossl::read_file(path);
  if (!pem) return std::unexpected(pem.error());
  auto certs = ossl::parse_certs(*pem, "trust bundle \"" + path + "\"");
  if (!certs) return std::unexpected(certs.error());
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  int64_t now = static_cast<int64_t>(std::time(nullptr));
  int roots = 0, live_roots = 0;
  for (const ossl::X509Ptr& c : *certs) {
    if (X509_STORE_add_cert(store, c.get()) != 1) {
      return std::unexpected("trust bundle \"" + path + "\": " + ossl::take_errors());
    }
    if (advertise_to_clients && SSL_CTX_add_client_CA(ctx, c.get()) != 1) {
      return std::unexpected("trust bundle \"" + path + "\": " + ossl::take_errors());
    }
    if (ossl::is_self_signed(c.get())) {
      ++roots;
      if (ossl::not_after(c.get()) > now) ++live_roots;
    }
  }
  if (roots == 0) {
    return std::unexpected("trust bundle \"" + path +
                           "\" has no root (self-signed) certificate; chains must end at a root "
                           "in the bundle");
  }
  if (live_roots == 0) {
    return std::unexpected("trust bundle \"" + path + "\": every root certificate has expired");
  }
  return std::move(*pem);
}

void set_session_id_context(SSL_CTX* ctx, const std::string& material) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(material.data(), material.size(), md, &len, EVP_sha256(), nullptr);
  SSL_CTX_set_session_id_context(ctx, md, std::min<unsigned int>(len, SSL_MAX_SID_CTX_LENGTH));
}

// Fails the handshake at the leaf when no SAN matches, recording HOSTNAME_MISMATCH so that
// SSL_get_verify_result names the reason.
int client_verify(int preverify_ok, X509_STORE_CTX* store_ctx) {
  if (preverify_ok != 1) return 0;
  if (X509_STORE_CTX_get_error_depth(store_ctx) != 0) return 1;
  auto* ssl = static_cast<SSL*>(
      X509_STORE_CTX_get_ex_data(store_ctx, SSL_get_ex_data_X509_STORE_CTX_idx()));
  if (ssl == nullptr) return 0;
  const CtxData* cd = ctx_data(ssl);
  const SslData* sd = ssl_data(ssl);
  std::vector<std::string> fallback;
  const std::vector<std::string>* patterns = cd ? &cd->verify_san : &fallback;
  if (patterns->empty()) {
    if (sd == nullptr || sd->sni.empty()) {
      X509_STORE_CTX_set_error(store_ctx, X509_V_ERR_HOSTNAME_MISMATCH);
      return 0;
    }
    fallback.push_back(sd->sni);
    patterns = &fallback;
  }
  if (!san_matches(X509_STORE_CTX_get_current_cert(store_ctx), *patterns)) {
    X509_STORE_CTX_set_error(store_ctx, X509_V_ERR_HOSTNAME_MISMATCH);
    return 0;
  }
  return 1;
}

int on_new_session(SSL* ssl, SSL_SESSION* session);

}  // namespace

// ---- ClientSessionCache ----

struct ClientSessionCache::State {
  struct Entry {
    ossl::SessionPtr session;
    uint64_t generation = 0;
  };
  size_t max_entries;
  std::unordered_map<std::string, Entry> entries;
};

namespace {

std::string cache_key(std::string_view endpoint, std::string_view sni) {
  std::string key(endpoint);
  key += '\n';
  key += sni;
  return key;
}

int on_new_session(SSL* ssl, SSL_SESSION* session) {
  SslData* sd = ssl_data(ssl);
  if (sd == nullptr) return 0;
  std::shared_ptr<ClientSessionCache::State> state = sd->cache.lock();
  if (!state || SSL_SESSION_is_resumable(session) != 1) return 0;
  // A copy: OpenSSL marks a connection's own session not resumable when the connection is freed
  // without a close_notify, which is how pooled connections usually end.
  ossl::SessionPtr copy(SSL_SESSION_dup(session));
  if (!copy) return 0;
  auto it = state->entries.find(sd->cache_key);
  if (it == state->entries.end()) {
    if (state->entries.size() >= state->max_entries) state->entries.erase(state->entries.begin());
    it = state->entries.emplace(sd->cache_key, ClientSessionCache::State::Entry{}).first;
  }
  it->second.session = std::move(copy);
  it->second.generation = sd->generation;
  return 0;  // OpenSSL keeps (and releases) its own reference
}

}  // namespace

ClientSessionCache::ClientSessionCache(size_t max_entries)
    : state_(std::make_shared<State>(State{std::max<size_t>(1, max_entries), {}})) {}
ClientSessionCache::~ClientSessionCache() = default;
size_t ClientSessionCache::size() const { return state_->entries.size(); }
void ClientSessionCache::forget(std::string_view endpoint_key, std::string_view sni) {
  state_->entries.erase(cache_key(endpoint_key, sni));
}
void ClientSessionCache::clear() { state_->entries.clear(); }

// ---- ServerTls ----

ServerTls::ServerTls(Passkey, SSL_CTX* adopted, Settings settings, int64_t not_after,
                     std::string uri_san)
    : ctx_(adopted),
      settings_(std::move(settings)),
      not_after_(not_after),
      uri_san_(std::move(uri_san)) {}

std::expected<std::shared_ptr<const ServerTls>, std::string> make_server_tls(
    const ServerTlsSettings& s) {
  ERR_clear_error();
  ossl::SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return std::unexpected("cannot create a TLS context: " + ossl::take_errors());
  set_common_options(ctx.get());
  SSL_CTX_set_options(ctx.get(), SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA);
  if (auto err = set_ciphers(ctx.get())) return std::unexpected(*err);
  if (s.cert_chain.empty() || s.key.empty()) {
    return std::unexpected("a TLS listener needs both a certificate chain and a key");
  }
  auto chain = install_chain(ctx.get(), s.cert_chain, s.key, X509_PURPOSE_SSL_SERVER, "server");
  if (!chain) return std::unexpected(chain.error());

  std::string sid_material = chain->digest_input;
  if (s.client_cert != ServerTlsSettings::kNone) {
    if (s.client_ca.empty()) {
      return std::unexpected("client certificates are requested but no client_ca is set");
    }
    auto trust = install_trust(ctx.get(), s.client_ca, true);
    if (!trust) return std::unexpected(trust.error());
    sid_material += *trust;
    int mode = SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE;
    if (s.client_cert == ServerTlsSettings::kRequired) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx.get(), mode, nullptr);
    SSL_CTX_set_verify_depth(ctx.get(), kVerifyDepth);
  }
  sid_material += static_cast<char>('0' + static_cast<int>(s.client_cert));
  // A session resumes only into a context with the same material and client-certificate policy.
  set_session_id_context(ctx.get(), sid_material);
  // Stateless tickets only: no cache shared (and locked) between workers; the ticket keys are
  // per context, so a reload of the material also ends resumption of older sessions.
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  SSL_CTX_set_timeout(ctx.get(), kSessionLifetime);
  SSL_CTX_set_num_tickets(ctx.get(), 1);

  auto wire = alpn_wire(s.alpn);
  if (!wire) return std::unexpected(wire.error());
  auto* data = new CtxData{s.alpn, {}, 0};
  SSL_CTX_set_ex_data(ctx.get(), ctx_index(), data);
  if (!s.alpn.empty()) SSL_CTX_set_alpn_select_cb(ctx.get(), select_alpn, data);

  try {
    return std::make_shared<const ServerTls>(ServerTls::Passkey{}, ctx.release(), s,
                                             chain->not_after, chain->uri_san);
  } catch (const std::exception& e) {
    return std::unexpected(std::string("cannot create a TLS context: ") + e.what());
  }
}

// ---- ClientTls ----

ClientTls::ClientTls(Passkey, SSL_CTX* adopted, Settings settings, std::optional<int64_t> not_after,
                     uint64_t generation)
    : ctx_(adopted),
      settings_(std::move(settings)),
      not_after_(not_after),
      generation_(generation) {}

std::expected<std::shared_ptr<const ClientTls>, std::string> make_client_tls(
    const ClientTlsSettings& s) {
  ERR_clear_error();
  ossl::SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return std::unexpected("cannot create a TLS context: " + ossl::take_errors());
  set_common_options(ctx.get());
  if (auto err = set_ciphers(ctx.get())) return std::unexpected(*err);

  if (s.ca.empty()) {
    return std::unexpected("a TLS cluster needs a trust bundle (ca: a PEM file, or \"system\")");
  }
  if (s.ca == "system") {
    if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
      return std::unexpected("cannot load the system trust store: " + ossl::take_errors());
    }
  } else if (auto trust = install_trust(ctx.get(), s.ca, false); !trust) {
    return std::unexpected(trust.error());
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, client_verify);
  SSL_CTX_set_verify_depth(ctx.get(), kVerifyDepth);

  std::optional<int64_t> not_after;
  if (s.cert.empty() != s.key.empty()) {
    return std::unexpected("a client certificate needs both cert and key");
  }
  if (!s.cert.empty()) {
    auto chain = install_chain(ctx.get(), s.cert, s.key, X509_PURPOSE_SSL_CLIENT, "client");
    if (!chain) return std::unexpected(chain.error());
    not_after = chain->not_after;
  }
  for (const std::string& p : s.verify_san) {
    if (p.empty()) return std::unexpected("verify_san: empty pattern");
  }

  auto wire = alpn_wire(s.alpn);
  if (!wire) return std::unexpected(wire.error());
  if (!wire->empty() && SSL_CTX_set_alpn_protos(ctx.get(), wire->data(),
                                                static_cast<unsigned int>(wire->size())) != 0) {
    return std::unexpected("cannot set alpn: " + ossl::take_errors());
  }
  SSL_CTX_set_session_cache_mode(ctx.get(),
                                 SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx.get(), on_new_session);

  uint64_t generation = next_generation.fetch_add(1, std::memory_order_relaxed);
  SSL_CTX_set_ex_data(ctx.get(), ctx_index(), new CtxData{s.alpn, s.verify_san, generation});
  try {
    return std::make_shared<const ClientTls>(ClientTls::Passkey{}, ctx.release(), s, not_after,
                                             generation);
  } catch (const std::exception& e) {
    return std::unexpected(std::string("cannot create a TLS context: ") + e.what());
  }
}

std::expected<SslPtr, std::string> ClientTls::new_ssl(std::string_view sni,
                                                      ClientSessionCache* sessions,
                                                      std::string_view endpoint_key) const {
  std::string name(sni.empty() ? std::string_view(settings_.sni) : sni);
  if (name.empty() && settings_.verify_san.empty()) {
    return std::unexpected("no SNI and no verify_san: nothing to verify the peer's name against");
  }
  ERR_clear_error();
  SslPtr ssl(SSL_new(native()));
  if (!ssl) return std::unexpected("cannot create a TLS connection: " + ossl::take_errors());
  if (!name.empty() && !is_ip_literal(name) &&
      SSL_set_tlsext_host_name(ssl.get(), name.c_str()) != 1) {
    return std::unexpected("invalid SNI \"" + name + "\": " + ossl::take_errors());
  }
  auto* data = new SslData{name, {}, {}, generation_};
  if (SSL_set_ex_data(ssl.get(), ssl_index(), data) != 1) {
    delete data;
    return std::unexpected("cannot create a TLS connection: " + ossl::take_errors());
  }
  if (sessions != nullptr) {
    data->cache = sessions->state_;
    data->cache_key = cache_key(endpoint_key, name);
    auto& entries = sessions->state_->entries;
    if (auto it = entries.find(data->cache_key); it != entries.end()) {
      SSL_SESSION* s = it->second.session.get();
      int64_t now = static_cast<int64_t>(std::time(nullptr));
      bool fresh = SSL_SESSION_get_time(s) + SSL_SESSION_get_timeout(s) > now;
      if (it->second.generation == generation_ && fresh && SSL_SESSION_is_resumable(s) == 1) {
        SSL_set_session(ssl.get(), s);
      } else {
        entries.erase(it);
      }
    }
  }
  return ssl;
}

// ---- checks ----

bool san_matches(X509* peer, const std::vector<std::string>& patterns) {
  if (peer == nullptr || patterns.empty()) return false;
  ossl::GeneralNamesPtr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(peer, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return false;
  for (const std::string& pattern : patterns) {
    bool uri = pattern.find("://") != std::string::npos;
    unsigned char ip[16];
    size_t ip_len = 0;
    bool is_ip = !uri && is_ip_literal(pattern, ip, &ip_len);
    for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
      if (uri && gn->type == GEN_URI) {
        auto text = san_text(gn->d.uniformResourceIdentifier);
        if (text && *text == pattern) return true;
      } else if (is_ip && gn->type == GEN_IPADD) {
        const ASN1_OCTET_STRING* a = gn->d.iPAddress;
        if (static_cast<size_t>(ASN1_STRING_length(a)) == ip_len &&
            std::memcmp(ASN1_STRING_get0_data(a), ip, ip_len) == 0) {
          return true;
        }
      } else if (!uri && !is_ip && gn->type == GEN_DNS) {
        auto text = san_text(gn->d.dNSName);
        if (text && dns_matches(pattern, *text)) return true;
      }
    }
  }
  return false;
}

std::string_view verify_failure_reason(long result) {
  switch (result) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return "expired";
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return "not_yet_valid";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_UNTRUSTED:
    case X509_V_ERR_CERT_REJECTED:
      return "unknown_ca";
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
    case X509_V_ERR_EMAIL_MISMATCH:
      return "san_mismatch";
    default:
      return "other";
  }
}

std::string_view handshake_failure_reason(const SSL* ssl) {
  if (ssl != nullptr) {
    long result = SSL_get_verify_result(ssl);
    if (result != X509_V_OK) return verify_failure_reason(result);
  }
  return "handshake_failed";
}

std::string_view handshake_failure_reason(const SSL* ssl, const boost::system::error_code& ec) {
  std::string_view verify = handshake_failure_reason(ssl);
  if (verify != "handshake_failed" || !ec) return verify;
  if (ec == boost::asio::ssl::error::stream_truncated || ec == boost::asio::error::eof) {
    return "eof";
  }
  if (ec.category() != boost::asio::error::get_ssl_category()) return verify;
  int reason = ERR_GET_REASON(static_cast<unsigned long>(ec.value()));
  switch (reason) {
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
      return "no_client_certificate";
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_WRONG_SSL_VERSION:
    case SSL_R_UNKNOWN_PROTOCOL:
      return "protocol_version";
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_SUITABLE_KEY_SHARE:
    case SSL_R_NO_SHARED_GROUPS:
      return "no_shared_cipher";
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
      return "not_tls";
    default:
      break;
  }
  if (reason >= SSL_AD_REASON_OFFSET) return "peer_alert";
  return verify;
}

Sniff sniff_client_hello(std::span<const unsigned char> b) {
  if (b.empty()) return Sniff::kNeedMore;
  if (b[0] != 0x16) return Sniff::kNotTls;
  if (b.size() < 2) return Sniff::kNeedMore;
  if (b[1] != 0x03) return Sniff::kNotTls;
  if (b.size() < 3) return Sniff::kNeedMore;
  return b[2] <= 0x04 ? Sniff::kTls : Sniff::kNotTls;
}

std::string_view negotiated_alpn(const SSL* ssl) {
  const unsigned char* data = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl, &data, &len);
  if (data == nullptr) return {};
  return {reinterpret_cast<const char*>(data), len};
}

}  // namespace outrigger::tls
