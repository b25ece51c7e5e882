// The ECS task metadata endpoint v4 (${ECS_CONTAINER_METADATA_URI_V4}/task): fetched once at start,
// with bounded retries, for the task's availability zone (zone preference, log and metric labels)
// and identity (task ARN, cluster, family, revision).
//
// Thread affinity: TaskMetadataFetcher lives on one io_context (the main thread): construct,
// start, stop and destroy it there; its callback runs there. TaskMetadata is a plain value.
#pragma once

#include <chrono>
#include <cstddef>
#include <expected>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "proxy/aws/credentials.h"  // Environment

namespace boost::asio {
class io_context;
}

namespace outrigger::aws {

struct TaskMetadata {
  std::string availability_zone;  // "us-east-1a"; empty when the agent does not report it (EC2
                                  // with an old agent; Fargate platform 1.4+ always does)
  std::string task_arn;           // arn:aws:ecs:us-east-1:111122223333:task/cluster/0123...
  std::string cluster;            // ARN or short name, as ECS reports it
  std::string family;
  std::string revision;     // a string in the JSON ("24")
  std::string launch_type;  // "FARGATE", "EC2" or empty
  std::string region;       // from the task ARN
  std::string account_id;   // from the task ARN
};

// Parses the /task document. TaskARN, Cluster, Family and Revision are required (Revision may be
// a string or a number); AvailabilityZone, when present, must be a valid AZ name.
std::expected<TaskMetadata, std::string> parse_task_metadata(std::string_view body);

// ECS_CONTAINER_METADATA_URI_V4, or nullopt when not running under ECS.
std::optional<std::string> metadata_uri_v4(const Environment& env);

class TaskMetadataFetcher {
 public:
  struct Options {
    int attempts = 5;                                 // then the callback gets the last error
    std::chrono::milliseconds request_timeout{2000};  // per attempt
    std::chrono::milliseconds retry_initial{200};     // doubling per attempt
    std::chrono::milliseconds retry_max{2000};
    // The task document lists every container with its labels and networks.
    size_t max_response_bytes = 256 * 1024;
  };
  using Callback = std::function<void(std::expected<TaskMetadata, std::string>)>;

  // base_uri is the value of ECS_CONTAINER_METADATA_URI_V4 ("http://169.254.170.2/v4/<id>").
  TaskMetadataFetcher(boost::asio::io_context& io, std::string base_uri, Options options,
                      Callback callback);
  ~TaskMetadataFetcher();  // stop()
  TaskMetadataFetcher(const TaskMetadataFetcher&) = delete;
  TaskMetadataFetcher& operator=(const TaskMetadataFetcher&) = delete;

  // Starts the first attempt. The callback runs once, later (never inside start), with the
  // metadata or the last attempt's error (a malformed base URI fails without attempts); never
  // after stop().
  void start();
  void stop();
  int attempts_made() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace outrigger::aws
