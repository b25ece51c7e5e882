// The main thread: binds listeners, starts workers, serves admin, refreshes DNS, and turns
// signals into drain (SIGTERM/SIGINT) and reload (SIGHUP).
//
// Thread affinity: everything here runs on the main thread; workers are reached only by posting
// immutable snapshots and drain commands to them.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <vector>

#include "config/model.h"
#include "proxy/admin/admin_server.h"
#include "proxy/dns/resolver.h"
#include "proxy/server/access_log.h"
#include "proxy/server/snapshot.h"
#include "proxy/server/worker.h"
#include "proxy/stats/stats.h"
#include "proxy/tls/watcher.h"
#include "proxy/aws/credentials.h"
#include "proxy/aws/ecs_metadata.h"
#include "proxy/upstream/health_check.h"

namespace outrigger::server {

class Server {
 public:
  // config_path is re-read on SIGHUP; empty when the config came from flags.
  Server(std::shared_ptr<const config::Config> config, std::string config_path);
  ~Server();
  // Runs until drained; returns the process exit code.
  int run();

 private:
  std::shared_ptr<const Snapshot> build_snapshot();
  bool bind_listeners(std::string* error);
  void start_admin();
  void start_dns();
  void sync_dns_targets();
  void reload();
  void begin_drain();
  void check_drained();
  void finish();
  void publish();
  std::string clusters_json() const;
  // Builds (or keeps, when unchanged) the TLS material of every listener and cluster of cfg.
  // On error nothing changes: the start-up or reload fails with the message.
  bool prepare_tls(const config::Config& cfg, std::string* error);
  std::string tls_metrics() const;

  template <class Tls, class Watcher>
  struct TlsEntry {
    std::string fingerprint;  // the settings it was built from
    std::unique_ptr<Watcher> watcher;
    std::shared_ptr<TlsSlot<Tls>> slot;
  };
  using ServerTlsEntry = TlsEntry<tls::ServerTls, tls::ServerTlsWatcher>;
  using ClientTlsEntry = TlsEntry<tls::ClientTls, tls::ClientTlsWatcher>;

  boost::asio::io_context io_{1};
  std::shared_ptr<const config::Config> config_;
  std::string config_path_;
  uint32_t worker_count_ = 1;
  std::unique_ptr<stats::Registry> registry_;
  std::unique_ptr<AccessLogSink> access_log_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::shared_ptr<const Snapshot> snapshot_;
  uint64_t generation_ = 0;
  std::map<std::string, std::vector<boost::asio::ip::tcp::endpoint>> dns_endpoints_;  // key -> set
  std::map<std::string, std::pair<config::HostPort, config::DnsRefresh>> dns_targets_;
  size_t dns_pending_first_ = 0;  // targets that have not answered once yet (readiness waits)
  std::set<std::string> seen_first_;
  std::unique_ptr<dns::Resolver> resolver_;
  std::unique_ptr<dns::Refresher> refresher_;
  std::unique_ptr<admin::AdminServer> admin_;
  // Resilience: cluster-wide state by cluster name, active health checks and their results.
  void sync_health_checks();
  std::map<std::string, std::shared_ptr<ClusterShared>> cluster_shared_;
  std::map<std::string, std::unique_ptr<upstream::HealthChecker>> checkers_;
  std::map<std::string, std::map<std::string, upstream::HealthState>> health_;  // cluster -> addr
  std::string local_zone_;  // aws.zone, else the ECS task's availability zone
  std::string aws_region_;  // aws.region, else AWS_REGION / AWS_DEFAULT_REGION, else the task's
  std::string task_arn_;
  void start_aws();
  void update_aws_pending();
  void maybe_ready();
  std::shared_ptr<CredentialSlot> credentials_;
  std::unique_ptr<aws::CredentialsProvider> credentials_provider_;
  std::unique_ptr<aws::TaskMetadataFetcher> metadata_;
  bool aws_pending_ = false, aws_pending_creds_ = false, aws_pending_meta_ = false;
  std::map<std::string, std::shared_ptr<ServerTlsEntry>> listener_tls_;  // by listener name
  std::map<std::string, std::shared_ptr<ClientTlsEntry>> cluster_tls_;   // by cluster name
  boost::asio::signal_set signals_{io_};
  boost::asio::steady_timer drain_timer_{io_};
  boost::asio::steady_timer drain_poll_{io_};
  boost::asio::steady_timer drain_deadline_{io_};
  bool listening_ = false;
  bool ready_logged_ = false;
  bool draining_ = false;
  bool finished_ = false;
};

}  // namespace outrigger::server
