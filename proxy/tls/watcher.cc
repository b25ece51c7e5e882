#include "proxy/tls/watcher.h"

#include <sys/stat.h>

#include <boost/asio/steady_timer.hpp>
#include <cerrno>

namespace outrigger::tls {
namespace {

struct FileSig {
  int err = 0;
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  bool operator==(const FileSig&) const = default;
};

using Signature = std::vector<FileSig>;

Signature signature_of(const std::vector<std::string>& files) {
  Signature sig;
  sig.reserve(files.size());
  for (const std::string& f : files) {
    struct stat st {};
    FileSig s;
    if (::stat(f.c_str(), &st) != 0) {
      s.err = errno;
    } else {
      s.dev = st.st_dev;
      s.ino = st.st_ino;
      s.size = st.st_size;
      s.mtime_ns = int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
      s.ctime_ns = int64_t{st.st_ctim.tv_sec} * 1'000'000'000 + st.st_ctim.tv_nsec;
    }
    sig.push_back(s);
  }
  return sig;
}

auto build(const ServerTlsSettings& s) { return make_server_tls(s); }
auto build(const ClientTlsSettings& s) { return make_client_tls(s); }

std::optional<int64_t> expiry(const ServerTls& t) { return t.not_after(); }
std::optional<int64_t> expiry(const ClientTls& t) { return t.not_after(); }

}  // namespace

std::vector<std::string> material_files(const ServerTlsSettings& s) {
  std::vector<std::string> files = {s.cert_chain, s.key};
  if (s.client_cert != ServerTlsSettings::kNone && !s.client_ca.empty()) {
    files.push_back(s.client_ca);
  }
  return files;
}

std::vector<std::string> material_files(const ClientTlsSettings& s) {
  std::vector<std::string> files;
  if (!s.ca.empty() && s.ca != "system") files.push_back(s.ca);
  if (!s.cert.empty()) files.push_back(s.cert);
  if (!s.key.empty()) files.push_back(s.key);
  return files;
}

template <class Tls>
struct TlsMaterialWatcher<Tls>::Impl : std::enable_shared_from_this<Impl> {
  Impl(boost::asio::any_io_executor ex, Settings s, Options o)
      : timer(ex), settings(std::move(s)), options(std::move(o)), files(material_files(settings)) {}

  void arm() {
    timer.expires_after(options.interval);
    timer.async_wait([weak = this->weak_from_this()](const boost::system::error_code& ec) {
      if (ec) return;
      if (auto self = weak.lock()) self->poll();
    });
  }

  void poll() {
    Signature sig = signature_of(files);
    if (sig == loaded) {
      has_pending = false;
    } else if (has_failed && sig == failed) {
      has_pending = false;
    } else if (!has_pending || sig != pending) {
      pending = std::move(sig);
      has_pending = true;
    } else {
      has_pending = false;
      rebuild(std::move(sig));
    }
    arm();
  }

  void rebuild(Signature sig) {
    auto next = build(settings);
    if (!next) {
      ++failures;
      failed = std::move(sig);
      has_failed = true;
      if (options.on_error) options.on_error(next.error());
      return;
    }
    ++reloads;
    current = *next;
    loaded = std::move(sig);
    has_failed = false;
    if (options.on_update) options.on_update(current);
  }

  boost::asio::steady_timer timer;
  Settings settings;
  Options options;
  std::vector<std::string> files;
  Ptr current;
  Signature loaded, pending, failed;
  bool has_pending = false, has_failed = false;
  uint64_t reloads = 0, failures = 0;
};

template <class Tls>
std::expected<std::unique_ptr<TlsMaterialWatcher<Tls>>, std::string> TlsMaterialWatcher<Tls>::start(
    boost::asio::any_io_executor executor, Settings settings, Options options) {
  if (options.interval.count() <= 0) options.interval = std::chrono::milliseconds(1000);
  try {
    auto impl = std::make_shared<Impl>(executor, std::move(settings), std::move(options));
    // The signature is taken before reading, so a change during the build is seen next poll.
    Signature sig = signature_of(impl->files);
    auto first = build(impl->settings);
    if (!first) return std::unexpected(first.error());
    impl->current = *first;
    impl->loaded = std::move(sig);
    impl->arm();
    return std::unique_ptr<TlsMaterialWatcher>(new TlsMaterialWatcher(std::move(impl)));
  } catch (const std::exception& e) {
    return std::unexpected(std::string("cannot watch TLS material: ") + e.what());
  }
}

template <class Tls>
TlsMaterialWatcher<Tls>::TlsMaterialWatcher(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

template <class Tls>
TlsMaterialWatcher<Tls>::~TlsMaterialWatcher() {
  try {
    impl_->timer.cancel();
  } catch (...) {
    // The handler holds only a weak reference, so a timer that could not be cancelled is inert.
  }
}

template <class Tls>
typename TlsMaterialWatcher<Tls>::Ptr TlsMaterialWatcher<Tls>::current() const {
  return impl_->current;
}

template <class Tls>
std::optional<int64_t> TlsMaterialWatcher<Tls>::not_after() const {
  return impl_->current ? expiry(*impl_->current) : std::nullopt;
}

template <class Tls>
uint64_t TlsMaterialWatcher<Tls>::reloads() const {
  return impl_->reloads;
}

template <class Tls>
uint64_t TlsMaterialWatcher<Tls>::failures() const {
  return impl_->failures;
}

template <class Tls>
const std::vector<std::string>& TlsMaterialWatcher<Tls>::files() const {
  return impl_->files;
}

template class TlsMaterialWatcher<ServerTls>;
template class TlsMaterialWatcher<ClientTls>;

}  // namespace outrigger::tls
