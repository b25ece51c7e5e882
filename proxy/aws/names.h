// Validators and parsers for the AWS names the config refers to: regions, availability zones,
// PrivateLink interface endpoint DNS names (regional and zonal, and deriving the zonal name for an
// AZ), VPC Lattice service DNS names and API Gateway execute-api hosts. Each returns the parts or
// an error string that says exactly which part is wrong and what was expected.
//
// Thread affinity: pure functions, any thread. DNS names are case-insensitive: input is accepted
// in any case with one trailing dot, and parts come back lower-case.
#pragma once

#include <expected>
#include <string>
#include <string_view>

namespace outrigger::aws {

struct Region {
  std::string name;       // "us-gov-west-1"
  std::string geo;        // "us"
  std::string qualifier;  // "gov", "iso", "isob", "isoe", "isof" or empty
  std::string direction;  // "west"
  int number = 0;         // 1
  std::string partition;  // "aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", ...
};
// <geo>-[<qualifier>-]<direction>-<n>, e.g. us-east-1, eu-central-2, cn-northwest-1.
std::expected<Region, std::string> parse_region(std::string_view name);

struct AvailabilityZone {
  std::string name;  // "us-east-1a"
  Region region;
  char letter = 'a';
};
// A region followed by one zone letter (AZ names, not AZ ids like use1-az1).
std::expected<AvailabilityZone, std::string> parse_availability_zone(std::string_view name);

struct PrivateLinkEndpointName {
  std::string endpoint_id;        // "vpce-0123456789abcdef0"
  std::string suffix;             // "abcdefgh" (8 characters)
  std::string availability_zone;  // "us-east-1a" for a zonal name; empty for the regional one
  std::string service_id;         // "vpce-svc-0123456789abcdef0"
  std::string region;             // "us-east-1"
  std::string dns_suffix;         // "amazonaws.com" or "amazonaws.com.cn"
};
// vpce-<id>-<suffix>[-<az>].vpce-svc-<id>.<region>.vpce.amazonaws.com[.cn]
std::expected<PrivateLinkEndpointName, std::string> parse_privatelink_endpoint_name(
    std::string_view name);
// The regional name of an endpoint (ignores availability_zone).
std::string regional_endpoint_name(const PrivateLinkEndpointName& n);
// The zonal name of the endpoint for az, which must be an AZ of the endpoint's region.
std::expected<std::string, std::string> zonal_endpoint_name(const PrivateLinkEndpointName& n,
                                                            std::string_view az);

struct LatticeServiceName {
  std::string service_name;  // "orders" (3-40 of a-z 0-9 -)
  std::string service_id;    // "svc-0123456789abcdef0" (from the hex after the name)
  std::string domain_label;  // "7d67968": the second label
  std::string region;
};
// <service-name>-<hex id>.<label>.vpc-lattice-svcs.<region>.on.aws
std::expected<LatticeServiceName, std::string> parse_lattice_service_name(std::string_view name);

struct ExecuteApiHost {
  std::string api_id;   // "abcde12345" (10 of a-z 0-9)
  std::string vpce_id;  // "vpce-…" for a private API's endpoint-specific name, else empty
  std::string region;
  std::string dns_suffix;  // "amazonaws.com" or "amazonaws.com.cn"
};
// <api-id>[-<vpce-id>].execute-api.<region>.amazonaws.com[.cn]
std::expected<ExecuteApiHost, std::string> parse_execute_api_host(std::string_view host);

}  // namespace outrigger::aws
