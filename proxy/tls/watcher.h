// Hot reload of TLS material: polls the certificate, key and trust-bundle files and rebuilds the
// context when they change, keeping the old one when the new files are broken.
//
// Thread affinity: main thread. All callbacks run on the executor given to start() (the main
// io_context); on_update is where the caller posts the new shared_ptr<const ServerTls/ClientTls>
// to its workers. Handshakes already running or done keep the context they started with.
//
// Detection: every `interval` each file is stat()ed (following symlinks) and its device, inode,
// size, mtime and ctime compared; atomic replacement by rename, in-place rewrites and symlink
// swaps are all seen. A change is acted upon once the files have stayed the same for one more
// interval, so a cert and key replaced one after the other are normally read as a pair; the
// reaction time is therefore between one and two intervals. A set of files that failed to load
// is not retried until it changes again.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proxy/tls/context.h"

namespace outrigger::tls {

template <class Tls>
class TlsMaterialWatcher {
 public:
  using Settings = typename Tls::Settings;
  using Ptr = std::shared_ptr<const Tls>;

  struct Options {
    std::chrono::milliseconds interval{1000};
    std::function<void(Ptr)> on_update;                // new material is in use
    std::function<void(const std::string&)> on_error;  // new files refused; the old stay in use
  };

  // Builds the material once (its error is returned: a config error at start-up or reload) and
  // starts polling.
  static std::expected<std::unique_ptr<TlsMaterialWatcher>, std::string> start(
      boost::asio::any_io_executor executor, Settings settings, Options options);

  ~TlsMaterialWatcher();  // stops polling; no callback runs afterwards
  TlsMaterialWatcher(const TlsMaterialWatcher&) = delete;
  TlsMaterialWatcher& operator=(const TlsMaterialWatcher&) = delete;

  Ptr current() const;
  // notAfter (seconds since the epoch) of the leaf in use, for the expiry metric; nullopt for a
  // client context without a client certificate.
  std::optional<int64_t> not_after() const;
  uint64_t reloads() const;   // successful rebuilds after the first load
  uint64_t failures() const;  // refused rebuilds
  const std::vector<std::string>& files() const;

  struct Impl;

 private:
  explicit TlsMaterialWatcher(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

using ServerTlsWatcher = TlsMaterialWatcher<ServerTls>;
using ClientTlsWatcher = TlsMaterialWatcher<ClientTls>;

// The files a context is built from (what the watcher polls).
std::vector<std::string> material_files(const ServerTlsSettings& settings);
std::vector<std::string> material_files(const ClientTlsSettings& settings);

}  // namespace outrigger::tls
