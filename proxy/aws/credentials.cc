#include "proxy/aws/credentials.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/system_timer.hpp>
#include <cstdlib>
#include <fstream>
#include <vector>

#include "proxy/aws/http_client.h"
#include "proxy/aws/json.h"

namespace outrigger::aws {
namespace {

constexpr std::string_view kExpiredPrefix = "credentials expired before a refresh succeeded";

namespace asio = boost::asio;
using std::chrono::system_clock;

constexpr std::string_view kEcsHost = "169.254.170.2";
constexpr size_t kMaxTokenFileBytes = 16 * 1024;

// The SDKs accept a FULL_URI over http only when it points at loopback or the ECS/EKS agents.
bool allowed_full_uri_host(std::string_view host) {
  if (host == "localhost") return true;
  boost::system::error_code ec;
  auto a = asio::ip::make_address(std::string(host), ec);
  if (ec) return false;
  if (a.is_loopback()) return true;
  if (a.is_v4()) {
    auto s = a.to_string();
    return s == "169.254.170.2" || s == "169.254.170.23";
  }
  return a == asio::ip::make_address("fd00:ec2::23");
}

std::optional<std::string> nonempty(const Environment& env, std::string_view name) {
  auto v = env(name);
  if (!v || v->empty()) return std::nullopt;
  return v;
}

// "Authorization" values go into a request line: no CR/LF, no surrounding whitespace.
std::expected<std::string, std::string> read_token_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::unexpected("cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE " + path);
  std::string token(kMaxTokenFileBytes + 1, '\0');
  f.read(token.data(), static_cast<std::streamsize>(token.size()));
  token.resize(static_cast<size_t>(f.gcount()));
  if (token.size() > kMaxTokenFileBytes) {
    return std::unexpected("authorization token file " + path + " is larger than 16 KiB");
  }
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ' ||
                            token.back() == '\t')) {
    token.pop_back();
  }
  if (token.empty()) return std::unexpected("authorization token file " + path + " is empty");
  if (token.find_first_of("\r\n") != std::string::npos) {
    OPENSSL_cleanse(token.data(), token.size());
    return std::unexpected("authorization token file " + path + " has more than one line");
  }
  return token;
}

bool same(const Credentials& a, const Credentials& b) {
  return a.access_key_id == b.access_key_id && a.secret_access_key == b.secret_access_key &&
         a.session_token == b.session_token && a.expiration == b.expiration;
}

int digits(std::string_view s, size_t at, size_t n) {
  if (at + n > s.size()) return -1;
  int v = 0;
  for (size_t i = at; i < at + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

// Keeps only printable ASCII of an endpoint's own error text, bounded, for the log.
std::string printable(std::string_view s, size_t max) {
  std::string out;
  for (char c : s.substr(0, max)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return out;
}

}  // namespace

Environment process_environment() {
  return [](std::string_view name) -> std::optional<std::string> {
    const char* v = std::getenv(std::string(name).c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

std::string CredentialSource::describe() const {
  if (kind == Kind::kStatic) return "environment (AWS_ACCESS_KEY_ID)";
  bool v6 = host.find(':') != std::string::npos;
  std::string d = "container endpoint http://" + (v6 ? "[" + host + "]" : host);
  if (port != 80) d += ":" + std::to_string(port);
  // The path of a RELATIVE_URI is an opaque per-task id: safe to log (the SDKs do too).
  d += target;
  if (!auth_token_file.empty())
    d += " (token from " + auth_token_file + ")";
  else if (!auth_token.empty())
    d += " (with authorization token)";
  return d;
}

std::expected<CredentialSource, std::string> resolve_credential_source(const Environment& env,
                                                                       const SourceOptions& opts) {
  CredentialSource s;
  if (auto rel = nonempty(env, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")) {
    if (rel->front() != '/') {
      return std::unexpected("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must start with '/'");
    }
    std::string host =
        opts.container_host_override.empty() ? std::string(kEcsHost) : opts.container_host_override;
    auto t = parse_http_url("http://" + host + *rel);
    if (!t) return std::unexpected("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: " + t.error());
    s.kind = CredentialSource::Kind::kContainer;
    s.host = t->host;
    s.port = t->port;
    s.target = t->target;
  } else if (auto full = nonempty(env, "AWS_CONTAINER_CREDENTIALS_FULL_URI")) {
    auto t = parse_http_url(*full);
    if (!t) return std::unexpected("AWS_CONTAINER_CREDENTIALS_FULL_URI: " + t.error());
    if (!allowed_full_uri_host(t->host)) {
      return std::unexpected("AWS_CONTAINER_CREDENTIALS_FULL_URI: host " + t->host +
                             " is not loopback, 169.254.170.2, 169.254.170.23 or fd00:ec2::23");
    }
    s.kind = CredentialSource::Kind::kContainer;
    s.host = t->host;
    s.port = t->port;
    s.target = t->target;
    if (auto file = nonempty(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")) {
      s.auth_token_file = *file;
    } else if (auto token = nonempty(env, "AWS_CONTAINER_AUTHORIZATION_TOKEN")) {
      if (token->find_first_of("\r\n") != std::string::npos) {
        return std::unexpected("AWS_CONTAINER_AUTHORIZATION_TOKEN has a line break");
      }
      s.auth_token = *token;
    }
  } else if (auto id = nonempty(env, "AWS_ACCESS_KEY_ID")) {
    auto secret = nonempty(env, "AWS_SECRET_ACCESS_KEY");
    if (!secret)
      return std::unexpected("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
    auto c = std::make_shared<Credentials>();
    c->access_key_id = *id;
    c->secret_access_key = *secret;
    c->session_token = nonempty(env, "AWS_SESSION_TOKEN").value_or("");
    s.kind = CredentialSource::Kind::kStatic;
    s.fixed = std::move(c);
  } else {
    return std::unexpected(
        "no AWS credentials configured: set AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (an ECS task "
        "role), AWS_CONTAINER_CREDENTIALS_FULL_URI, or AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY");
  }
  return s;
}

std::optional<system_clock::time_point> parse_iso8601(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM); 't', ' ' and 'z' accepted as RFC 3339 allows.
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' ||
      (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || s[13] != ':' || s[16] != ':') {
    return std::nullopt;
  }
  int y = digits(s, 0, 4), mo = digits(s, 5, 2), d = digits(s, 8, 2);
  int h = digits(s, 11, 2), mi = digits(s, 14, 2), sec = digits(s, 17, 2);
  if (y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 ||
      sec > 60) {
    return std::nullopt;
  }
  using namespace std::chrono;
  year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  size_t pos = 19;
  nanoseconds frac{0};
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t start = pos;
    long long scale = 100000000;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      frac += nanoseconds((s[pos] - '0') * scale);
      scale /= 10;
      ++pos;
    }
    if (pos == start) return std::nullopt;
  }
  if (pos >= s.size()) return std::nullopt;
  minutes offset{0};
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    int oh = digits(s, pos + 1, 2), om = digits(s, pos + 4, 2);
    if (oh < 0 || om < 0 || pos + 6 > s.size() || s[pos + 3] != ':' || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset = hours(oh) + minutes(om);
    if (s[pos] == '-') offset = -offset;
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  auto t = sys_days{ymd} + hours(h) + minutes(mi) + seconds(sec) - offset;
  return time_point_cast<system_clock::duration>(t + duration_cast<system_clock::duration>(frac));
}

std::expected<Credentials, std::string> parse_container_credentials(std::string_view body) {
  auto members = json::parse_object(body);
  if (!members)
    return std::unexpected("credentials response is not a JSON object: " + members.error());
  if (json::find_member(*members, "AccessKeyId") == nullptr) {
    // An error document: {"code": "...", "message": "..."}.
    auto code = json::string_member(*members, "code");
    auto message = json::string_member(*members, "message");
    if (code || message) {
      return std::unexpected("credentials endpoint error " + printable(code.value_or("?"), 64) +
                             ": " + printable(message.value_or(""), 200));
    }
    return std::unexpected("credentials response has no AccessKeyId");
  }
  Credentials c;
  auto id = json::string_member(*members, "AccessKeyId");
  if (!id) return std::unexpected("credentials response: " + id.error());
  auto secret = json::string_member(*members, "SecretAccessKey");
  if (!secret) return std::unexpected("credentials response: " + secret.error());
  c.access_key_id = std::move(*id);
  c.secret_access_key = std::move(*secret);
  if (c.access_key_id.empty() || c.secret_access_key.empty()) {
    return std::unexpected("credentials response has an empty AccessKeyId or SecretAccessKey");
  }
  if (json::find_member(*members, "Token") != nullptr) {
    auto token = json::string_member(*members, "Token");
    if (!token) return std::unexpected("credentials response: " + token.error());
    c.session_token = std::move(*token);
  }
  if (json::find_member(*members, "Expiration") != nullptr) {
    auto exp = json::string_member(*members, "Expiration");
    if (!exp) return std::unexpected("credentials response: " + exp.error());
    auto t = parse_iso8601(*exp);
    if (!t) return std::unexpected("credentials response: Expiration is not an ISO 8601 time");
    c.expiration = *t;
  }
  return c;
}

struct CredentialsProvider::State : std::enable_shared_from_this<CredentialsProvider::State> {
  State(asio::io_context& io, CredentialSource s, Options o, Callbacks c)
      : io(io),
        source(std::move(s)),
        options(o),
        callbacks(std::move(c)),
        refresh_timer(io),
        expiry_timer(io) {}

  asio::io_context& io;
  CredentialSource source;
  Options options;
  Callbacks callbacks;
  asio::steady_timer refresh_timer;
  asio::system_timer expiry_timer;
  std::shared_ptr<HttpCall> call;
  std::shared_ptr<const Credentials> current;
  std::string last_error;
  std::optional<std::chrono::steady_clock::time_point> next_refresh;
  std::chrono::milliseconds backoff{0};
  uint64_t fetches = 0;
  uint64_t failures = 0;
  bool running = false;
  bool expired = false;  // the last good set expired and no refresh has succeeded since

  void fetch();
  void on_response(std::expected<HttpResult, std::string> r);
  void fail(std::string why);
  void schedule(std::chrono::milliseconds delay);
  void watch_expiry();
  void publish(std::shared_ptr<const Credentials> c) {
    if (c != nullptr) expired = false;  // a good set again (the expiry handler sets it)
    current = std::move(c);
    if (callbacks.on_credentials) callbacks.on_credentials(current);
  }
};

void CredentialsProvider::State::fetch() {
  if (!running) return;
  ++fetches;
  next_refresh.reset();
  std::vector<std::pair<std::string, std::string>> headers;
  if (!source.auth_token_file.empty()) {
    // Re-read each time: EKS rotates the projected token file.
    auto token = read_token_file(source.auth_token_file);
    if (!token) return fail(token.error());
    headers.emplace_back("Authorization", std::move(*token));
  } else if (!source.auth_token.empty()) {
    headers.emplace_back("Authorization", source.auth_token);
  }
  HttpGetOptions get;
  get.timeout = options.request_timeout;
  get.max_response_bytes = options.max_response_bytes;
  std::weak_ptr<State> weak = weak_from_this();
  call = http_get(io, HttpTarget{source.host, source.port, source.target}, headers, get,
                  [weak](std::expected<HttpResult, std::string> r) {
                    if (auto s = weak.lock()) s->on_response(std::move(r));
                  });
  for (auto& [name, value] : headers) OPENSSL_cleanse(value.data(), value.size());
}

void CredentialsProvider::State::on_response(std::expected<HttpResult, std::string> r) {
  call.reset();
  if (!running) return;
  if (!r) return fail(r.error());
  auto wipe_body = [&] { OPENSSL_cleanse(r->body.data(), r->body.size()); };
  if (r->status != 200) {
    std::string why = "credentials endpoint answered HTTP " + std::to_string(r->status);
    // Error bodies are {"code","message"}: parsed, never echoed raw.
    if (auto c = parse_container_credentials(r->body); !c) why += " (" + c.error() + ")";
    wipe_body();
    return fail(why);
  }
  auto parsed = parse_container_credentials(r->body);
  wipe_body();
  if (!parsed) return fail(parsed.error());
  auto now = system_clock::now();
  if (parsed->expiration && *parsed->expiration <= now) {
    return fail("credentials endpoint returned credentials that have already expired");
  }
  last_error.clear();
  backoff = std::chrono::milliseconds(0);
  if (current == nullptr || !same(*current, *parsed)) {
    publish(std::make_shared<const Credentials>(std::move(*parsed)));
  }
  // Next refresh: refresh_before_expiry ahead of the expiry, at most max_refresh_interval away,
  // never sooner than min_refresh_interval.
  auto delay = options.max_refresh_interval;
  if (current->expiration) {
    auto until = std::chrono::duration_cast<std::chrono::milliseconds>(*current->expiration - now);
    delay = std::min(delay, until - options.refresh_before_expiry);
  }
  schedule(std::max(delay, options.min_refresh_interval));
  watch_expiry();
}

// Keeps the last good set through failures, but not past its expiry: then nullptr is published,
// so workers stop signing with credentials AWS would refuse.
void CredentialsProvider::State::watch_expiry() {
  expiry_timer.cancel();
  if (current == nullptr || !current->expiration) return;
  expiry_timer.expires_at(*current->expiration);
  std::weak_ptr<State> weak = weak_from_this();
  std::weak_ptr<const Credentials> watched = current;
  expiry_timer.async_wait([weak, watched](boost::system::error_code ec) {
    auto s = weak.lock();
    if (ec || s == nullptr || !s->running) return;
    if (s->current == nullptr || s->current != watched.lock()) return;
    s->last_error = std::string(kExpiredPrefix) +
                    (s->last_error.empty() ? std::string() : ": " + s->last_error);
    if (s->callbacks.on_error) s->callbacks.on_error(s->last_error);
    s->expired = true;
    s->publish(nullptr);
  });
}

void CredentialsProvider::State::fail(std::string why) {
  ++failures;
  // While the set is expired, every later failure still says so (admin and logs show it).
  last_error = expired ? std::string(kExpiredPrefix) + ": " + why : std::move(why);
  if (callbacks.on_error) callbacks.on_error(last_error);
  backoff = backoff.count() == 0 ? options.retry_initial : std::min(backoff * 2, options.retry_max);
  schedule(backoff);
}

void CredentialsProvider::State::schedule(std::chrono::milliseconds delay) {
  if (!running) return;
  refresh_timer.expires_after(delay);
  next_refresh = refresh_timer.expiry();
  std::weak_ptr<State> weak = weak_from_this();
  refresh_timer.async_wait([weak](boost::system::error_code ec) {
    auto s = weak.lock();
    if (ec || s == nullptr) return;
    s->fetch();
  });
}

CredentialsProvider::CredentialsProvider(asio::io_context& io, CredentialSource source,
                                         Options options, Callbacks callbacks)
    : state_(std::make_shared<State>(io, std::move(source), options, std::move(callbacks))) {}

CredentialsProvider::~CredentialsProvider() { stop(); }

void CredentialsProvider::start() {
  if (state_->running) return;
  state_->running = true;
  if (state_->source.kind == CredentialSource::Kind::kStatic) {
    ++state_->fetches;
    state_->publish(state_->source.fixed);
    return;
  }
  state_->fetch();
}

void CredentialsProvider::stop() {
  state_->running = false;
  state_->next_refresh.reset();
  state_->refresh_timer.cancel();
  state_->expiry_timer.cancel();
  if (state_->call) {
    state_->call->cancel();
    state_->call.reset();
  }
}

std::shared_ptr<const Credentials> CredentialsProvider::current() const { return state_->current; }
const std::string& CredentialsProvider::last_error() const { return state_->last_error; }
uint64_t CredentialsProvider::fetches() const { return state_->fetches; }
uint64_t CredentialsProvider::failures() const { return state_->failures; }
std::optional<std::chrono::steady_clock::time_point> CredentialsProvider::next_refresh() const {
  return state_->next_refresh;
}

}  // namespace outrigger::aws
