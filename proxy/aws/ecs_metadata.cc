#include "proxy/aws/ecs_metadata.h"

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "proxy/aws/http_client.h"
#include "proxy/aws/json.h"
#include "proxy/aws/names.h"

namespace outrigger::aws {
namespace {

namespace asio = boost::asio;

std::expected<std::string, std::string> required(const std::vector<json::Member>& m,
                                                 std::string_view key) {
  auto v = json::string_member(m, key);
  if (!v) return std::unexpected("task metadata: " + v.error());
  if (v->empty()) return std::unexpected("task metadata: field " + std::string(key) + " is empty");
  return v;
}

}  // namespace

std::expected<TaskMetadata, std::string> parse_task_metadata(std::string_view body) {
  auto members = json::parse_object(body);
  if (!members) return std::unexpected("task metadata is not a JSON object: " + members.error());
  TaskMetadata t;
  auto arn = required(*members, "TaskARN");
  if (!arn) return std::unexpected(arn.error());
  t.task_arn = std::move(*arn);
  auto cluster = required(*members, "Cluster");
  if (!cluster) return std::unexpected(cluster.error());
  t.cluster = std::move(*cluster);
  auto family = required(*members, "Family");
  if (!family) return std::unexpected(family.error());
  t.family = std::move(*family);
  const json::Member* rev = json::find_member(*members, "Revision");
  if (rev != nullptr && rev->value.kind == json::Kind::kNumber) {
    t.revision = std::string(rev->value.raw);
  } else {
    auto r = required(*members, "Revision");
    if (!r) return std::unexpected(r.error());
    t.revision = std::move(*r);
  }
  if (json::find_member(*members, "AvailabilityZone") != nullptr) {
    auto az = required(*members, "AvailabilityZone");
    if (!az) return std::unexpected(az.error());
    auto parsed = parse_availability_zone(*az);
    if (!parsed) return std::unexpected("task metadata: " + parsed.error());
    t.availability_zone = std::move(*az);
  }
  if (json::find_member(*members, "LaunchType") != nullptr) {
    auto lt = json::string_member(*members, "LaunchType");
    if (!lt) return std::unexpected("task metadata: " + lt.error());
    t.launch_type = std::move(*lt);
  }
  // arn:<partition>:ecs:<region>:<account>:task/...
  std::string_view a = t.task_arn;
  std::string_view parts[6];
  for (int i = 0; i < 5; ++i) {
    size_t colon = a.find(':');
    if (colon == std::string_view::npos) {
      return std::unexpected(
          "task metadata: TaskARN is not an ARN (arn:aws:ecs:<region>:"
          "<account>:task/...)");
    }
    parts[i] = a.substr(0, colon);
    a.remove_prefix(colon + 1);
  }
  parts[5] = a;
  if (parts[0] != "arn" || parts[2] != "ecs" || !parts[5].starts_with("task/")) {
    return std::unexpected("task metadata: TaskARN is not an ECS task ARN");
  }
  auto region = parse_region(parts[3]);
  if (!region) return std::unexpected("task metadata: TaskARN: " + region.error());
  if (parts[4].size() != 12 ||
      !std::all_of(parts[4].begin(), parts[4].end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::unexpected("task metadata: TaskARN account is not 12 digits");
  }
  t.region = std::string(parts[3]);
  t.account_id = std::string(parts[4]);
  if (!t.availability_zone.empty() && !t.availability_zone.starts_with(t.region)) {
    return std::unexpected("task metadata: AvailabilityZone " + t.availability_zone +
                           " is not in the task's region " + t.region);
  }
  return t;
}

std::optional<std::string> metadata_uri_v4(const Environment& env) {
  auto v = env("ECS_CONTAINER_METADATA_URI_V4");
  if (!v || v->empty()) return std::nullopt;
  return v;
}

struct TaskMetadataFetcher::State : std::enable_shared_from_this<TaskMetadataFetcher::State> {
  State(asio::io_context& io, std::string uri, Options o, Callback cb)
      : io(io), base_uri(std::move(uri)), options(o), callback(std::move(cb)), timer(io) {}

  asio::io_context& io;
  std::string base_uri;
  Options options;
  Callback callback;
  asio::steady_timer timer;
  std::shared_ptr<HttpCall> call;
  HttpTarget target;
  std::chrono::milliseconds backoff{0};
  int attempts = 0;
  bool running = false;

  void attempt() {
    if (!running) return;
    ++attempts;
    HttpGetOptions get;
    get.timeout = options.request_timeout;
    get.max_response_bytes = options.max_response_bytes;
    std::weak_ptr<State> weak = weak_from_this();
    call = http_get(io, target, {}, get, [weak](std::expected<HttpResult, std::string> r) {
      if (auto s = weak.lock()) s->on_response(std::move(r));
    });
  }

  void on_response(std::expected<HttpResult, std::string> r) {
    call.reset();
    if (!running) return;
    std::expected<TaskMetadata, std::string> result;
    if (!r) {
      result = std::unexpected(r.error());
    } else if (r->status != 200) {
      result = std::unexpected("task metadata endpoint answered HTTP " + std::to_string(r->status));
    } else {
      result = parse_task_metadata(r->body);
    }
    // A malformed document will not get better by asking again; an unreachable agent may.
    bool retry = !result && (!r || r->status != 200) && attempts < options.attempts;
    if (retry) {
      backoff =
          backoff.count() == 0 ? options.retry_initial : std::min(backoff * 2, options.retry_max);
      timer.expires_after(backoff);
      std::weak_ptr<State> weak = weak_from_this();
      timer.async_wait([weak](boost::system::error_code ec) {
        auto s = weak.lock();
        if (!ec && s) s->attempt();
      });
      return;
    }
    finish(std::move(result));
  }

  void finish(std::expected<TaskMetadata, std::string> result) {
    running = false;
    if (auto cb = std::move(callback)) {
      callback = nullptr;
      if (!result) {
        result = std::unexpected(result.error() + " (after " + std::to_string(attempts) +
                                 (attempts == 1 ? " attempt)" : " attempts)"));
      }
      cb(std::move(result));
    }
  }
};

TaskMetadataFetcher::TaskMetadataFetcher(asio::io_context& io, std::string base_uri,
                                         Options options, Callback callback)
    : state_(std::make_shared<State>(io, std::move(base_uri), options, std::move(callback))) {}

TaskMetadataFetcher::~TaskMetadataFetcher() { stop(); }

void TaskMetadataFetcher::start() {
  if (state_->running) return;
  state_->running = true;
  std::string uri = state_->base_uri;
  while (!uri.empty() && uri.back() == '/') uri.pop_back();
  auto target = parse_http_url(uri + "/task");
  std::weak_ptr<State> weak = state_;
  if (!target) {
    std::string why = "ECS_CONTAINER_METADATA_URI_V4: " + target.error();
    asio::post(state_->io, [weak, why]() {
      if (auto s = weak.lock(); s && s->running) {
        s->running = false;
        if (auto cb = std::move(s->callback)) cb(std::unexpected(why));
      }
    });
    return;
  }
  state_->target = std::move(*target);
  state_->attempt();
}

void TaskMetadataFetcher::stop() {
  state_->running = false;
  state_->callback = nullptr;
  state_->timer.cancel();
  if (state_->call) {
    state_->call->cancel();
    state_->call.reset();
  }
}

int TaskMetadataFetcher::attempts_made() const { return state_->attempts; }

}  // namespace outrigger::aws
