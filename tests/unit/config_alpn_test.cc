// Tests of the cluster `protocol` key with `auto-by-alpn` (config/loader.cc): it needs tls, the
// ALPN offer each protocol gets by default, offers that cannot work for the protocol, and the JSON
// round trip.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/loader.h"
#include "config/model.h"

namespace outrigger::config {
namespace {

using Lines = std::vector<std::string>;

// Line 1 is "listeners:"; the cluster under test starts on line 6 with "  - name: app".
std::string config_with(std::string_view cluster_body) {
  std::string s =
      "listeners:\n"
      "  - name: l\n"
      "    address: 127.0.0.1:15001\n"
      "    routes: [{cluster: app}]\n"
      "clusters:\n"
      "  - name: app\n"
      "    endpoints: [127.0.0.1:8443]\n";
  s += cluster_body;
  return s;
}

Lines errors_of(const std::string& text) {
  LoadResult r = load_string(text, "t.yaml");
  Lines out;
  for (const Diagnostic& d : r.errors) out.push_back(d.to_string());
  EXPECT_EQ(r.ok(), out.empty());
  return out;
}

const Cluster& only_cluster(const LoadResult& r) {
  static const Cluster kNone;
  for (const Diagnostic& d : r.errors) ADD_FAILURE() << d.to_string();
  if (!r.ok() || r.config->clusters.empty()) return kNone;
  return r.config->clusters[0];
}

TEST(ConfigAlpn, AutoByAlpnOffersH2ThenHttp11ByDefault) {
  LoadResult r = load_string(config_with("    protocol: auto-by-alpn\n"
                                         "    tls: {ca: system, sni: app.internal}\n"),
                             "t.yaml");
  const Cluster& c = only_cluster(r);
  EXPECT_EQ(c.protocol, UpstreamProtocol::kAutoByAlpn);
  ASSERT_TRUE(c.tls);
  EXPECT_EQ(c.tls->alpn, (Lines{"h2", "http/1.1"}));
  EXPECT_EQ(upstream_protocol_name(c.protocol), "auto-by-alpn");
}

TEST(ConfigAlpn, EachProtocolGetsTheOfferItSpeaks) {
  {
    LoadResult r = load_string(config_with("    tls: {ca: system, sni: app.internal}\n"), "t.yaml");
    const Cluster& c = only_cluster(r);
    EXPECT_EQ(c.protocol, UpstreamProtocol::kHttp1);
    ASSERT_TRUE(c.tls);
    EXPECT_EQ(c.tls->alpn, Lines{"http/1.1"});
  }
  {
    LoadResult r = load_string(config_with("    protocol: http2\n"
                                           "    tls: {ca: system, sni: app.internal}\n"),
                               "t.yaml");
    const Cluster& c = only_cluster(r);
    ASSERT_TRUE(c.tls);
    EXPECT_EQ(c.tls->alpn, Lines{"h2"});
  }
  {
    // Written out, the order is the preference and is kept.
    LoadResult r = load_string(config_with("    protocol: auto-by-alpn\n"
                                           "    tls: {ca: system, sni: app.internal, "
                                           "alpn: [http/1.1, h2]}\n"),
                               "t.yaml");
    const Cluster& c = only_cluster(r);
    ASSERT_TRUE(c.tls);
    EXPECT_EQ(c.tls->alpn, (Lines{"http/1.1", "h2"}));
  }
}

TEST(ConfigAlpn, AutoByAlpnWithoutTlsIsAnErrorAtTheProtocolValue) {
  EXPECT_EQ(errors_of(config_with("    protocol: auto-by-alpn\n")),
            Lines{"t.yaml:8:15: protocol auto-by-alpn needs tls: ALPN is negotiated in the TLS "
                  "handshake"});
  // A tls block with its own errors gets those, not this one as well.
  const Lines errors = errors_of(config_with("    protocol: auto-by-alpn\n"
                                             "    tls: {sni: app.internal}\n"));
  EXPECT_EQ(errors, Lines{"t.yaml:9:10: missing required key \"ca\" in tls"});
}

TEST(ConfigAlpn, UnknownProtocolListsAutoByAlpn) {
  EXPECT_EQ(errors_of(config_with("    protocol: auto\n"
                                  "    tls: {ca: system, sni: app.internal}\n")),
            Lines{"t.yaml:8:15: protocol: unknown protocol \"auto\" (expected http1, http2 or "
                  "auto-by-alpn)"});
}

TEST(ConfigAlpn, OffersThatCannotWorkForTheProtocol) {
  EXPECT_EQ(errors_of(config_with("    protocol: auto-by-alpn\n"
                                  "    tls:\n"
                                  "      ca: system\n"
                                  "      sni: app.internal\n"
                                  "      alpn: [h2]\n")),
            Lines{"t.yaml:12:13: alpn: protocol auto-by-alpn offers both \"h2\" and \"http/1.1\"; "
                  "list both (in order of preference) or leave alpn out"});
  EXPECT_EQ(errors_of(config_with("    tls:\n"
                                  "      ca: system\n"
                                  "      sni: app.internal\n"
                                  "      alpn: [h2, http/1.1]\n")),
            Lines{"t.yaml:11:13: alpn: a protocol http1 cluster cannot offer \"h2\" (it speaks "
                  "HTTP/1.1 on every connection); use protocol http2 or auto-by-alpn"});
  EXPECT_EQ(errors_of(config_with("    protocol: http2\n"
                                  "    tls:\n"
                                  "      ca: system\n"
                                  "      sni: app.internal\n"
                                  "      alpn: [http/1.1]\n")),
            Lines{"t.yaml:12:13: alpn: a protocol http2 cluster must offer \"h2\""});
}

TEST(ConfigAlpn, JsonRoundTripKeepsProtocolAndOffer) {
  for (std::string_view protocol : {"http1", "http2", "auto-by-alpn"}) {
    LoadResult r = load_string(config_with("    protocol: " + std::string(protocol) +
                                           "\n    tls: {ca: system, sni: app.internal}\n"),
                               "t.yaml");
    ASSERT_TRUE(r.ok()) << protocol;
    const std::string json = to_json(*r.config);
    EXPECT_NE(json.find("\"protocol\": \"" + std::string(protocol) + "\""), std::string::npos)
        << json;
    LoadResult again = load_string(json, "effective.json");
    for (const Diagnostic& d : again.errors) ADD_FAILURE() << protocol << ": " << d.to_string();
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again.config->clusters[0].protocol, r.config->clusters[0].protocol);
    EXPECT_EQ(again.config->clusters[0].tls->alpn, r.config->clusters[0].tls->alpn);
    EXPECT_EQ(to_json(*again.config), json);
  }
}

}  // namespace
}  // namespace outrigger::config
