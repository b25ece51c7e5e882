#include "proxy/tls/ossl.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

namespace outrigger::tls::ossl {
namespace {

constexpr size_t kMaxPemBytes = 1u << 20;

int64_t to_epoch(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

}  // namespace

std::string take_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    // "error:0A00018E:SSL routines::ca md too weak" -> the reason after the last ':'.
    std::string_view text(buf);
    if (size_t colon = text.rfind(':'); colon != std::string_view::npos) {
      text.remove_prefix(colon + 1);
    }
    if (text.empty()) continue;
    if (!out.empty()) out += "; ";
    out += text;
  }
  return out;
}

std::expected<std::string, std::string> read_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::unexpected("cannot read \"" + path + "\": " + std::strerror(errno));
  std::string text;
  char buf[16 * 1024];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return std::unexpected("cannot read \"" + path + "\": " + std::strerror(err));
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxPemBytes) {
      ::close(fd);
      return std::unexpected("cannot read \"" + path + "\": larger than 1 MiB");
    }
  }
  ::close(fd);
  return text;
}

std::expected<std::vector<X509Ptr>, std::string> parse_certs(std::string_view pem,
                                                             const std::string& label) {
  ERR_clear_error();
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return std::unexpected(label + ": out of memory");
  std::vector<X509Ptr> certs;
  while (true) {
    X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
    if (x == nullptr) break;
    certs.emplace_back(x);
  }
  // Reading stops with "no start line" at the end of the input; anything else is a bad block.
  unsigned long last = ERR_peek_last_error();
  if (last != 0 &&
      !(ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE)) {
    return std::unexpected(label + ": bad PEM certificate (" + take_errors() + ")");
  }
  ERR_clear_error();
  if (certs.empty()) return std::unexpected(label + ": no PEM certificate found");
  return certs;
}

std::expected<std::vector<X509Ptr>, std::string> load_certs(const std::string& path) {
  auto text = read_file(path);
  if (!text) return std::unexpected(text.error());
  return parse_certs(*text, "\"" + path + "\"");
}

std::expected<PkeyPtr, std::string> load_key(const std::string& path) {
  auto text = read_file(path);
  if (!text) return std::unexpected(text.error());
  ERR_clear_error();
  BioPtr bio(BIO_new_mem_buf(text->data(), static_cast<int>(text->size())));
  // An empty passphrase callback result makes encrypted keys fail instead of prompting on a tty.
  auto no_pass = [](char*, int, int, void*) -> int { return 0; };
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_pass, nullptr));
  if (!key) {
    std::string why = take_errors();
    return std::unexpected("\"" + path + "\": no usable PEM private key" +
                           (why.empty() ? std::string() : " (" + why + ")"));
  }
  return key;
}

int64_t not_before(const X509* cert) { return to_epoch(X509_get0_notBefore(cert)); }
int64_t not_after(const X509* cert) { return to_epoch(X509_get0_notAfter(cert)); }

std::string format_time(int64_t epoch_seconds) {
  time_t t = static_cast<time_t>(epoch_seconds);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

bool is_self_signed(X509* cert) { return X509_self_signed(cert, 0) == 1; }

std::string sha256_hex(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &len) != 1) return {};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 0xf];
  }
  return out;
}

}  // namespace outrigger::tls::ossl
