#include "proxy/aws/names.h"

#include <algorithm>
#include <array>
#include <vector>

namespace outrigger::aws {
namespace {

constexpr std::array<std::string_view, 10> kGeos = {"us", "eu", "ap", "sa", "ca",
                                                    "me", "af", "il", "mx", "cn"};
constexpr std::array<std::string_view, 5> kQualifiers = {"gov", "iso", "isob", "isoe", "isof"};
constexpr std::array<std::string_view, 9> kDirections = {"east",      "west",      "north",
                                                         "south",     "central",   "northeast",
                                                         "northwest", "southeast", "southwest"};

template <size_t N>
bool one_of(const std::array<std::string_view, N>& set, std::string_view s) {
  return std::find(set.begin(), set.end(), s) != set.end();
}

template <size_t N>
std::string list(const std::array<std::string_view, N>& set) {
  std::string out;
  for (std::string_view s : set) {
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out;
}

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }
bool all_of(std::string_view s, bool (*pred)(char)) {
  return std::all_of(s.begin(), s.end(), pred);
}

std::string quoted(std::string_view s) {
  std::string out = "'";
  for (char c : s.substr(0, 80)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (s.size() > 80) out += "...";
  return out + "'";
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (;;) {
    size_t end = s.find(sep, start);
    parts.push_back(s.substr(start, end == std::string_view::npos ? s.npos : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

// Lower-cases, drops one trailing dot and checks the generic DNS shape (labels 1-63 bytes of
// a-z 0-9 -, not starting or ending with '-', total <= 253).
std::expected<std::string, std::string> normalize_dns(std::string_view name,
                                                      std::string_view what) {
  std::string n;
  n.reserve(name.size());
  for (char c : name) n += (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
  if (!n.empty() && n.back() == '.') n.pop_back();
  if (n.empty()) return std::unexpected(std::string(what) + " is empty");
  if (n.size() > 253) return std::unexpected(std::string(what) + " is longer than 253 characters");
  for (std::string_view label : split(n, '.')) {
    if (label.empty())
      return std::unexpected(std::string(what) + " " + quoted(name) + " has an empty label");
    if (label.size() > 63) {
      return std::unexpected(std::string(what) + " label " + quoted(label) + " is longer than 63");
    }
    for (char c : label) {
      if (!is_lower_alnum(c) && c != '-') {
        return std::unexpected(std::string(what) + " label " + quoted(label) +
                               " has a character other than a-z, 0-9 and '-'");
      }
    }
    if (label.front() == '-' || label.back() == '-') {
      return std::unexpected(std::string(what) + " label " + quoted(label) +
                             " starts or ends with '-'");
    }
  }
  return n;
}

std::string_view dns_suffix_for(const Region& r) {
  return r.partition == "aws-cn" ? "amazonaws.com.cn" : "amazonaws.com";
}

// Checks the trailing labels amazonaws.com[.cn] from index `at` and that they fit the region.
std::expected<std::string, std::string> check_amazonaws(const std::vector<std::string_view>& labels,
                                                        size_t at, const Region& region,
                                                        std::string_view what) {
  std::string got;
  for (size_t i = at; i < labels.size(); ++i) {
    if (!got.empty()) got += '.';
    got += labels[i];
  }
  if (got != "amazonaws.com" && got != "amazonaws.com.cn") {
    return std::unexpected(std::string(what) +
                           " must end in amazonaws.com or amazonaws.com.cn, not " + quoted(got));
  }
  if (got != dns_suffix_for(region)) {
    return std::unexpected(std::string(what) + " region " + region.name + " (partition " +
                           region.partition + ") uses " + std::string(dns_suffix_for(region)) +
                           ", not " + got);
  }
  return got;
}

// "vpce-" + 8 or 17 hex digits (older and current id lengths).
bool valid_resource_id(std::string_view id, std::string_view prefix) {
  if (!id.starts_with(prefix)) return false;
  std::string_view hex = id.substr(prefix.size());
  return (hex.size() == 8 || hex.size() == 17) && all_of(hex, is_hex);
}

}  // namespace

std::expected<Region, std::string> parse_region(std::string_view name) {
  if (name.empty()) return std::unexpected("region is empty");
  auto parts = split(name, '-');
  if (parts.size() != 3 && parts.size() != 4) {
    return std::unexpected("region " + quoted(name) +
                           " must look like us-east-1 or us-gov-west-1 (<geo>-[<qualifier>-]"
                           "<direction>-<number>)");
  }
  Region r;
  r.name = std::string(name);
  r.geo = std::string(parts[0]);
  if (!one_of(kGeos, parts[0])) {
    return std::unexpected("region " + quoted(name) + ": " + quoted(parts[0]) +
                           " is not a known geography (" + list(kGeos) + ")");
  }
  size_t at = 1;
  if (parts.size() == 4) {
    if (!one_of(kQualifiers, parts[1])) {
      return std::unexpected("region " + quoted(name) + ": " + quoted(parts[1]) +
                             " is not a known qualifier (" + list(kQualifiers) + ")");
    }
    r.qualifier = std::string(parts[1]);
    at = 2;
  }
  if (!one_of(kDirections, parts[at])) {
    return std::unexpected("region " + quoted(name) + ": " + quoted(parts[at]) +
                           " is not a direction (" + list(kDirections) + ")");
  }
  r.direction = std::string(parts[at]);
  std::string_view num = parts[at + 1];
  if (num.empty() || num.size() > 2 || !all_of(num, [](char c) { return c >= '0' && c <= '9'; }) ||
      num.front() == '0') {
    return std::unexpected("region " + quoted(name) + ": " + quoted(num) +
                           " is not a number from 1 to 99");
  }
  r.number = std::stoi(std::string(num));
  if (r.geo == "cn") {
    if (!r.qualifier.empty())
      return std::unexpected("region " + quoted(name) + ": cn takes no qualifier");
    r.partition = "aws-cn";
  } else if (r.qualifier == "gov") {
    r.partition = "aws-us-gov";
  } else if (r.qualifier == "iso") {
    r.partition = "aws-iso";
  } else if (!r.qualifier.empty()) {
    r.partition = "aws-iso-" + r.qualifier.substr(3);
  } else {
    r.partition = "aws";
  }
  return r;
}

std::expected<AvailabilityZone, std::string> parse_availability_zone(std::string_view name) {
  if (name.size() < 2)
    return std::unexpected("availability zone " + quoted(name) + " is too short");
  char letter = name.back();
  if (letter < 'a' || letter > 'z') {
    if (parse_region(name)) {
      return std::unexpected("availability zone " + quoted(name) +
                             " is a region: add the zone letter (e.g. " + std::string(name) + "a)");
    }
    return std::unexpected("availability zone " + quoted(name) +
                           " must be a region followed by a zone letter, e.g. us-east-1a");
  }
  auto region = parse_region(name.substr(0, name.size() - 1));
  if (!region) return std::unexpected("availability zone " + quoted(name) + ": " + region.error());
  return AvailabilityZone{std::string(name), std::move(*region), letter};
}

std::expected<PrivateLinkEndpointName, std::string> parse_privatelink_endpoint_name(
    std::string_view input) {
  constexpr std::string_view kWhat = "PrivateLink endpoint name";
  auto n = normalize_dns(input, kWhat);
  if (!n) return std::unexpected(n.error());
  auto labels = split(*n, '.');
  if (labels.size() < 6 || labels[3] != "vpce") {
    return std::unexpected(std::string(kWhat) + " " + quoted(input) +
                           " must look like vpce-<id>-<suffix>.vpce-svc-<id>.<region>.vpce."
                           "amazonaws.com");
  }
  PrivateLinkEndpointName out;
  auto region = parse_region(labels[2]);
  if (!region) return std::unexpected(std::string(kWhat) + ": " + region.error());
  out.region = region->name;
  auto suffix = check_amazonaws(labels, 4, *region, kWhat);
  if (!suffix) return std::unexpected(suffix.error());
  out.dns_suffix = std::move(*suffix);
  if (!valid_resource_id(labels[1], "vpce-svc-")) {
    return std::unexpected(std::string(kWhat) + ": second label " + quoted(labels[1]) +
                           " must be the endpoint service id, vpce-svc- and 8 or 17 hex digits");
  }
  out.service_id = std::string(labels[1]);
  // First label: vpce-<id>-<suffix>[-<az>]
  std::string_view first = labels[0];
  if (!first.starts_with("vpce-")) {
    return std::unexpected(std::string(kWhat) + ": first label " + quoted(first) +
                           " must start with vpce-");
  }
  size_t id_end = first.find('-', 5);
  std::string_view id = first.substr(0, id_end);
  if (!valid_resource_id(id, "vpce-")) {
    return std::unexpected(std::string(kWhat) + ": " + quoted(id) +
                           " is not an endpoint id (vpce- and 8 or 17 hex digits)");
  }
  out.endpoint_id = std::string(id);
  if (id_end == std::string_view::npos) {
    return std::unexpected(std::string(kWhat) + ": first label " + quoted(first) +
                           " lacks the -<suffix> after the endpoint id");
  }
  std::string_view rest = first.substr(id_end + 1);
  std::string_view sfx = rest.substr(0, rest.find('-'));
  if (sfx.size() != 8 || !all_of(sfx, is_lower_alnum)) {
    return std::unexpected(std::string(kWhat) + ": " + quoted(sfx) +
                           " after the endpoint id must be 8 letters or digits");
  }
  out.suffix = std::string(sfx);
  if (rest.size() > sfx.size()) {
    std::string_view az = rest.substr(sfx.size() + 1);
    auto parsed = parse_availability_zone(az);
    if (!parsed) return std::unexpected(std::string(kWhat) + ": zonal part: " + parsed.error());
    if (parsed->region.name != out.region) {
      return std::unexpected(std::string(kWhat) + ": zone " + std::string(az) +
                             " is not in the name's region " + out.region);
    }
    out.availability_zone = std::string(az);
  }
  return out;
}

std::string regional_endpoint_name(const PrivateLinkEndpointName& n) {
  return n.endpoint_id + "-" + n.suffix + "." + n.service_id + "." + n.region + ".vpce." +
         n.dns_suffix;
}

std::expected<std::string, std::string> zonal_endpoint_name(const PrivateLinkEndpointName& n,
                                                            std::string_view az) {
  auto parsed = parse_availability_zone(az);
  if (!parsed) return std::unexpected(parsed.error());
  if (parsed->region.name != n.region) {
    return std::unexpected("availability zone " + parsed->name + " is not in region " + n.region +
                           " of endpoint " + n.endpoint_id);
  }
  return n.endpoint_id + "-" + n.suffix + "-" + parsed->name + "." + n.service_id + "." + n.region +
         ".vpce." + n.dns_suffix;
}

std::expected<LatticeServiceName, std::string> parse_lattice_service_name(std::string_view input) {
  constexpr std::string_view kWhat = "VPC Lattice service name";
  auto n = normalize_dns(input, kWhat);
  if (!n) return std::unexpected(n.error());
  auto labels = split(*n, '.');
  if (labels.size() != 6 || labels[2] != "vpc-lattice-svcs" || labels[4] != "on" ||
      labels[5] != "aws") {
    return std::unexpected(std::string(kWhat) + " " + quoted(input) +
                           " must look like <name>-<id>.<label>.vpc-lattice-svcs.<region>.on.aws");
  }
  LatticeServiceName out;
  auto region = parse_region(labels[3]);
  if (!region) return std::unexpected(std::string(kWhat) + ": " + region.error());
  out.region = region->name;
  if (!all_of(labels[1], is_lower_alnum)) {
    return std::unexpected(std::string(kWhat) + ": second label " + quoted(labels[1]) +
                           " must be letters and digits");
  }
  out.domain_label = std::string(labels[1]);
  std::string_view first = labels[0];
  size_t dash = first.rfind('-');
  if (dash == std::string_view::npos) {
    return std::unexpected(std::string(kWhat) + ": first label " + quoted(first) +
                           " must be the service name, '-' and the service id's hex digits");
  }
  std::string_view name = first.substr(0, dash);
  std::string_view id = first.substr(dash + 1);
  if (id.size() < 8 || id.size() > 17 || !all_of(id, is_hex)) {
    return std::unexpected(std::string(kWhat) + ": " + quoted(id) +
                           " after the service name must be the service id's 8-17 hex digits");
  }
  if (name.size() < 3 || name.size() > 40) {
    return std::unexpected(std::string(kWhat) + ": service name " + quoted(name) +
                           " must be 3 to 40 characters");
  }
  if (name.find("--") != std::string_view::npos || name.starts_with("svc-")) {
    return std::unexpected(std::string(kWhat) + ": service name " + quoted(name) +
                           " has '--' or starts with svc-");
  }
  out.service_name = std::string(name);
  out.service_id = "svc-" + std::string(id);
  return out;
}

std::expected<ExecuteApiHost, std::string> parse_execute_api_host(std::string_view input) {
  constexpr std::string_view kWhat = "execute-api host";
  auto n = normalize_dns(input, kWhat);
  if (!n) return std::unexpected(n.error());
  auto labels = split(*n, '.');
  if (labels.size() < 5 || labels[1] != "execute-api") {
    return std::unexpected(std::string(kWhat) + " " + quoted(input) +
                           " must look like <api-id>.execute-api.<region>.amazonaws.com");
  }
  ExecuteApiHost out;
  auto region = parse_region(labels[2]);
  if (!region) return std::unexpected(std::string(kWhat) + ": " + region.error());
  out.region = region->name;
  auto suffix = check_amazonaws(labels, 3, *region, kWhat);
  if (!suffix) return std::unexpected(suffix.error());
  out.dns_suffix = std::move(*suffix);
  std::string_view first = labels[0];
  std::string_view api = first.substr(0, first.find('-'));
  if (api.size() != 10 || !all_of(api, is_lower_alnum)) {
    return std::unexpected(std::string(kWhat) + ": API id " + quoted(api) +
                           " must be 10 letters or digits");
  }
  out.api_id = std::string(api);
  if (first.size() > api.size()) {
    std::string_view vpce = first.substr(api.size() + 1);
    if (!valid_resource_id(vpce, "vpce-")) {
      return std::unexpected(std::string(kWhat) + ": " + quoted(vpce) +
                             " after the API id must be a VPC endpoint id (vpce- and 8 or 17 hex "
                             "digits)");
    }
    out.vpce_id = std::string(vpce);
  }
  return out;
}

}  // namespace outrigger::aws
