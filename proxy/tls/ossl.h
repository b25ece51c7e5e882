// Small OpenSSL helpers shared by the tls module: owning pointers, the error queue as text, and
// bounded PEM loading with messages that name the file. Internal to proxy/tls/.
//
// Thread affinity: none (pure functions over their arguments).
#pragma once

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdint>
#include <expected>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace outrigger::tls::ossl {

template <auto Free>
struct Deleter {
  template <class T>
  void operator()(T* p) const {
    Free(p);
  }
};

using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, Deleter<SSL_CTX_free>>;
using SessionPtr = std::unique_ptr<SSL_SESSION, Deleter<SSL_SESSION_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES_free>>;

// Drains OpenSSL's thread-local error queue into "reason; reason" (empty when it was empty).
std::string take_errors();

// Reads a whole file of at most 1 MiB; the error names the path and errno's text.
std::expected<std::string, std::string> read_file(const std::string& path);

// Every certificate of a PEM file, in file order; an error when there is none or a block is bad.
std::expected<std::vector<X509Ptr>, std::string> load_certs(const std::string& path);
std::expected<std::vector<X509Ptr>, std::string> parse_certs(std::string_view pem,
                                                             const std::string& label);

// The first (unencrypted) private key of a PEM file.
std::expected<PkeyPtr, std::string> load_key(const std::string& path);

// notBefore / notAfter as seconds since the epoch.
int64_t not_before(const X509* cert);
int64_t not_after(const X509* cert);

// "2026-11-22T10:00:00Z".
std::string format_time(int64_t epoch_seconds);

// Whether cert is a CA that signed itself (a trust anchor).
bool is_self_signed(X509* cert);

// Lower-case hex SHA-256 of the certificate's DER encoding.
std::string sha256_hex(X509* cert);

}  // namespace outrigger::tls::ossl
