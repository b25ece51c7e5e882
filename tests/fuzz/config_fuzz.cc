// libFuzzer target for the config loader (config/loader.h): YAML in, a validated Config or errors
// out. An operator's file, not a client's bytes, but the promise is the same: any text gets a
// Config or FILE:LINE:COLUMN errors, never an exception, a crash or a hang. Built and run like
// h1_fuzz.cc (tests/CMakeLists.txt, run.sh), from the documented examples; by hand:
//   tests/fuzz/run.sh build/release/tests/config_fuzz 600 tests/fuzz/corpus/config
//
// Input: the YAML text. Besides the sanitizers, the properties checked:
//  * every error names the file and a position inside the text (or none: line 0);
//  * a Config that loads is what the admin /config endpoint prints (to_json), and that JSON
//    loads back to a Config that prints the same (config/README: "the output loads back
//    unchanged"), with no error.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "config/loader.h"
#include "tests/fuzz/fuzz.h"

namespace {
using namespace outrigger::config;


}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  if (size > 16384) return 0;
  const std::string_view yaml(reinterpret_cast<const char*>(bytes), size);
  size_t lines = 1;
  for (char c : yaml) lines += c == '\n';
  const LoadResult r = load_string(yaml, "fuzz.yaml");
  if (!r.ok()) {
    check(!r.errors.empty());
    for (const Diagnostic& d : r.errors) {
      check(d.to_string().starts_with("fuzz.yaml:"));
      check(d.loc.line <= lines + 1);
      check(!d.message.empty());
    }
    return 0;
  }
  check(r.errors.empty());
  const std::string json = to_json(*r.config);
  const LoadResult again = load_string(json, "fuzz.json");
  if (!again.ok()) {
    for (const Diagnostic& d : again.errors) std::fprintf(stderr, "%s\n", d.to_string().c_str());
    std::fprintf(stderr, "%s\n", json.c_str());
  }
  check(again.ok());
  const std::string json2 = to_json(*again.config);
  if (json2 != json) std::fprintf(stderr, "first:\n%s\nthen:\n%s\n", json.c_str(), json2.c_str());
  check(json2 == json);
  return 0;
}
