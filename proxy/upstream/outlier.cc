#include "proxy/upstream/outlier.h"

#include <algorithm>

namespace outrigger::upstream {

namespace {
bool is_gateway_error(int status) noexcept {
  return status == 502 || status == 503 || status == 504;
}
}  // namespace

std::string_view eject_reason_name(EjectReason r) noexcept {
  switch (r) {
    case EjectReason::kNone:
      return "";
    case EjectReason::kConsecutive5xx:
      return "consecutive_5xx";
    case EjectReason::kConsecutiveGatewayFailure:
      return "consecutive_gateway_failure";
    case EjectReason::kConsecutiveLocalOriginFailure:
      return "consecutive_local_origin_failure";
  }
  return "";
}

OutlierDetector::OutlierDetector(const OutlierOptions& o) : opts_(o) { changed(); }

void OutlierDetector::assign(std::span<const boost::asio::ip::tcp::endpoint> endpoints,
                             Clock::time_point now) {
  std::vector<EndpointOutlierState> next(endpoints.size());
  for (size_t i = 0; i < endpoints.size(); ++i) {
    const auto it = std::find(addrs_.begin(), addrs_.end(), endpoints[i]);
    if (it != addrs_.end()) next[i] = eps_[static_cast<size_t>(it - addrs_.begin())];
  }
  addrs_.assign(endpoints.begin(), endpoints.end());
  eps_ = std::move(next);
  ejected_count_ = static_cast<size_t>(
      std::count_if(eps_.begin(), eps_.end(), [](const auto& e) { return e.ejected; }));
  recompute_next_unejection();
  if (next_decay_ == Clock::time_point::max()) next_decay_ = now + opts_.interval;
  changed();
  sweep(now);  // anything carried over whose time is already up
}

EjectReason OutlierDetector::record_response(size_t i, int status, Clock::time_point now) noexcept {
  if (i >= eps_.size()) return EjectReason::kNone;
  EndpointOutlierState& e = eps_[i];
  e.consecutive_local_origin_failure = 0;  // a response: the connection worked
  if (status < 500 || status > 599) {
    e.consecutive_5xx = 0;
    e.consecutive_gateway_failure = 0;
    return EjectReason::kNone;
  }
  ++e.consecutive_5xx;
  if (is_gateway_error(status)) {
    ++e.consecutive_gateway_failure;
  } else {
    e.consecutive_gateway_failure = 0;
  }
  EjectReason why = EjectReason::kNone;
  if (opts_.consecutive_gateway_failure != 0 &&
      e.consecutive_gateway_failure >= opts_.consecutive_gateway_failure) {
    why = EjectReason::kConsecutiveGatewayFailure;
  } else if (opts_.consecutive_5xx != 0 && e.consecutive_5xx >= opts_.consecutive_5xx) {
    why = EjectReason::kConsecutive5xx;
  }
  return why == EjectReason::kNone ? why : try_eject(i, why, now);
}

EjectReason OutlierDetector::record_local_origin_failure(size_t i, Clock::time_point now) noexcept {
  if (i >= eps_.size()) return EjectReason::kNone;
  if (!opts_.split_external_local_origin_errors) {
    // Envoy's default mode: a local-origin failure counts as the 503 the proxy answers for it.
    EndpointOutlierState& e = eps_[i];
    const uint32_t saved = e.consecutive_local_origin_failure;
    const EjectReason r = record_response(i, 503, now);
    e.consecutive_local_origin_failure = saved;
    return r;
  }
  EndpointOutlierState& e = eps_[i];
  ++e.consecutive_local_origin_failure;
  if (opts_.consecutive_local_origin_failure == 0 ||
      e.consecutive_local_origin_failure < opts_.consecutive_local_origin_failure) {
    return EjectReason::kNone;
  }
  return try_eject(i, EjectReason::kConsecutiveLocalOriginFailure, now);
}

void OutlierDetector::record_local_origin_success(size_t i) noexcept {
  if (i < eps_.size()) eps_[i].consecutive_local_origin_failure = 0;
}

bool OutlierDetector::on_health_check_success(size_t i, Clock::time_point now) noexcept {
  if (!opts_.successful_active_health_check_uneject_host || i >= eps_.size() || !eps_[i].ejected) {
    return false;
  }
  const bool was_in_force = now < eps_[i].until;
  uneject(i, now);
  recompute_next_unejection();
  changed();
  return was_in_force;
}

EjectReason OutlierDetector::try_eject(size_t i, EjectReason why, Clock::time_point now) noexcept {
  EndpointOutlierState& e = eps_[i];
  if (e.ejected) {
    if (now < e.until) return EjectReason::kNone;  // already out (traffic reaches it only in panic)
    uneject(i, now);                               // expired, the sweep has not run yet
  }
  // Envoy's ejection algorithm (docs: arch_overview/upstream/outlier, "Ejection algorithm"):
  // "It checks to make sure the number of ejected hosts is below the allowed threshold (specified
  // via the outlier_detection.max_ejection_percent setting). If the number of ejected hosts is
  // above the threshold, the host is not ejected." Envoy counts the host being ejected, so the
  // percentage after this ejection must stay within the limit; always_eject_one_host allows the
  // first one regardless ("If enabled, at least one host is ejected regardless of the value of
  // max_ejection_percent", outlier_detection.proto).
  const uint64_t n = eps_.size();
  const bool within =
      uint64_t{100} * (ejected_count_ + 1) <= uint64_t{opts_.max_ejection_percent} * n;
  if (!within && !(opts_.always_eject_one_host && ejected_count_ == 0)) {
    ++stats_.ejections_overflow;
    return EjectReason::kNone;
  }
  ++e.multiplier;
  ++e.ejections;
  const auto cap = std::max(opts_.max_ejection_time, opts_.base_ejection_time);
  const auto base = opts_.base_ejection_time;
  // base x multiplier, saturating at the cap.
  const auto span = base.count() > 0 && e.multiplier > cap.count() / base.count()
                        ? cap
                        : std::min<milliseconds>(cap, base * e.multiplier);
  e.ejected = true;
  e.until = now + span;
  e.last_reason = why;
  // A returning endpoint must fail a fresh run of threshold times before it is ejected again.
  e.consecutive_5xx = e.consecutive_gateway_failure = e.consecutive_local_origin_failure = 0;
  ++ejected_count_;
  ++stats_.ejections_enforced[static_cast<size_t>(why) - 1];
  next_unejection_ = std::min(next_unejection_, e.until);
  changed();
  return why;
}

void OutlierDetector::uneject(size_t i, Clock::time_point now) noexcept {
  EndpointOutlierState& e = eps_[i];
  if (!e.ejected) return;
  e.ejected = false;
  e.back_since = now;
  e.consecutive_5xx = e.consecutive_gateway_failure = e.consecutive_local_origin_failure = 0;
  --ejected_count_;
  ++stats_.unejections;
}

bool OutlierDetector::sweep(Clock::time_point now) noexcept {
  bool any = false;
  if (now >= next_unejection_) {
    for (size_t i = 0; i < eps_.size(); ++i) {
      if (eps_[i].ejected && now >= eps_[i].until) {
        uneject(i, now);
        any = true;
      }
    }
    recompute_next_unejection();
  }
  if (now >= next_decay_) {
    // Envoy: "If the host is healthy during that check, the ejection time multiplier is
    // decremented" (checked every outlier_detection.interval). Healthy here means back in service
    // for a whole interval, so the sweep that returns an endpoint does not also forgive it.
    for (EndpointOutlierState& e : eps_) {
      if (!e.ejected && e.multiplier > 0 && now - e.back_since >= opts_.interval) --e.multiplier;
    }
    next_decay_ = now + opts_.interval;
  }
  if (any) changed();
  return any;
}

void OutlierDetector::recompute_next_unejection() noexcept {
  next_unejection_ = Clock::time_point::max();
  for (const EndpointOutlierState& e : eps_) {
    if (e.ejected) next_unejection_ = std::min(next_unejection_, e.until);
  }
}

void OutlierDetector::changed() noexcept {
  ++generation_;
  auto v = std::make_shared<OutlierView>();
  v->endpoints.reserve(eps_.size());
  for (size_t i = 0; i < eps_.size(); ++i) {
    const EndpointOutlierState& e = eps_[i];
    v->endpoints.push_back(
        {addrs_[i], e.ejected, e.until, e.multiplier, e.ejections, e.last_reason});
  }
  v->stats = stats_;
  v->generation = generation_;
  view_.store(std::move(v), std::memory_order_release);
}

}  // namespace outrigger::upstream
