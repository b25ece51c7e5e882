// AWS credentials for SigV4: where they come from (ECS/EKS container credentials endpoint, or the
// AWS_ACCESS_KEY_ID family of environment variables) and a provider that fetches them, refreshes
// them before they expire without blocking requests, and publishes each new set as an immutable
// shared_ptr<const Credentials>.
//
// Thread affinity: CredentialsProvider lives on one io_context (the proxy's main thread):
// construct, start, stop and destroy it there; its callbacks run there. Credentials are immutable
// once published and may be shared with any thread (the lead posts them to workers).
//
// Secrets (secret access key, session token, the endpoint's authorization token) never appear in
// an error string or log line.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace boost::asio {
class io_context;
}

namespace outrigger::aws {

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty for long-term keys
  // When AWS stops honouring them; none for long-term keys from the environment.
  std::optional<std::chrono::system_clock::time_point> expiration;
};

// Reads an environment variable (a function so tests need not touch the process environment).
using Environment = std::function<std::optional<std::string>(std::string_view name)>;
Environment process_environment();

struct CredentialSource {
  enum class Kind { kContainer, kStatic };
  Kind kind = Kind::kStatic;
  // kContainer: the endpoint, http only, host an IP literal or localhost (no DNS on the main
  // thread, and AWS only hands out 169.254.170.2, 169.254.170.23 and loopback).
  std::string host;  // "169.254.170.2", "127.0.0.1", "fd00:ec2::23"
  uint16_t port = 80;
  std::string target;           // path and query, e.g. "/v2/credentials/…"
  std::string auth_token;       // AWS_CONTAINER_AUTHORIZATION_TOKEN
  std::string auth_token_file;  // AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (read at every fetch)
  // kStatic: from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN.
  std::shared_ptr<const Credentials> fixed;

  std::string describe() const;  // for logs: kind and endpoint, never a secret
};

struct SourceOptions {
  // Replaces 169.254.170.2 (host or host:port) for AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, so
  // tests can point it at loopback. An option, not an environment variable, to keep prod safe.
  std::string container_host_override;
};

// Picks the source, in this order (the sidecar runs in ECS, where the task role is what is
// meant; static keys are a development fallback):
//   1. AWS_CONTAINER_CREDENTIALS_RELATIVE_URI  -> http://169.254.170.2<uri>
//   2. AWS_CONTAINER_CREDENTIALS_FULL_URI, with AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (preferred)
//      or AWS_CONTAINER_AUTHORIZATION_TOKEN sent as Authorization
//   3. AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN)
// Fails with a clear message when none is configured or one is malformed (https FULL_URI is
// not supported yet; a FULL_URI host must be loopback, 169.254.170.2, 169.254.170.23 or
// fd00:ec2::23, as the SDKs require).
std::expected<CredentialSource, std::string> resolve_credential_source(const Environment& env,
                                                                       const SourceOptions& opts);

// Parses the container endpoint's JSON ({"AccessKeyId","SecretAccessKey","Token","Expiration"});
// an error document ({"code","message"}) becomes its code and message.
std::expected<Credentials, std::string> parse_container_credentials(std::string_view body);
// ISO 8601 / RFC 3339 UTC time: 2026-11-22T10:00:00Z, fractions and +HH:MM offsets accepted.
std::optional<std::chrono::system_clock::time_point> parse_iso8601(std::string_view s);

class CredentialsProvider {
 public:
  struct Options {
    std::chrono::milliseconds request_timeout{2000};  // one GET, connect to last byte
    size_t max_response_bytes = 64 * 1024;
    // Refresh this long before expiry...
    std::chrono::milliseconds refresh_before_expiry{std::chrono::minutes(5)};
    // ...but at least this often (also the period when the expiry is unknown).
    std::chrono::milliseconds max_refresh_interval{std::chrono::minutes(15)};
    // Never sooner than this after a success (credentials that expire very soon would spin).
    std::chrono::milliseconds min_refresh_interval{std::chrono::seconds(10)};
    // Failed fetches retry after retry_initial, doubling up to retry_max.
    std::chrono::milliseconds retry_initial{std::chrono::seconds(1)};
    std::chrono::milliseconds retry_max{std::chrono::minutes(1)};
  };
  struct Callbacks {
    // A new set (changed keys, token or expiry), or nullptr when the last good set expired and
    // nothing replaced it. Runs on the io_context's thread.
    std::function<void(std::shared_ptr<const Credentials>)> on_credentials;
    // Each failed fetch, with a message free of secrets (for the log).
    std::function<void(std::string_view error)> on_error;
  };

  CredentialsProvider(boost::asio::io_context& io, CredentialSource source, Options options,
                      Callbacks callbacks);
  ~CredentialsProvider();  // stop()
  CredentialsProvider(const CredentialsProvider&) = delete;
  CredentialsProvider& operator=(const CredentialsProvider&) = delete;

  // Fetches at once (static sources publish at once) and keeps refreshing until stop().
  void start();
  void stop();

  std::shared_ptr<const Credentials> current() const;  // nullptr until the first success
  const std::string& last_error() const;               // empty after a success
  uint64_t fetches() const;                            // attempts so far (tests, metrics)
  uint64_t failures() const;
  // When the next fetch is due (steady clock); none for static sources or when stopped.
  std::optional<std::chrono::steady_clock::time_point> next_refresh() const;

  struct State;

 private:
  std::shared_ptr<State> state_;  // shared with in-flight operations, which may outlive this
};

}  // namespace outrigger::aws
