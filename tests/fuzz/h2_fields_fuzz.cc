// libFuzzer target for the HTTP/2 field rules (proxy/h2/fields.h): the request and response
// validation every HTTP/2 head goes through, the word-at-a-time lower-casing of names, and the
// field list that stores them. Built and run like h1_fuzz.cc (tests/CMakeLists.txt, run.sh).
//
// Input: fields as [name length byte][name][value length byte][value]..., then one byte of
// flags (bit 0: validate as trailers). Besides the sanitizers, the properties checked:
//  * lower_copy equals a byte-by-byte lower-casing, into another buffer and in place;
//  * a FieldList keeps every field in order, names lower-cased, values as given, and get()
//    returns a name's first value;
//  * a request the validator accepts has a non-empty :method, pseudo-headers only first, only
//    lower-case names, no connection-specific field and at most one content-length; a response
//    it accepts has one 3-digit :status first (none in trailers).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/h2/fields.h"

namespace {
using namespace outrigger::h2;

void check(bool ok) {
  if (!ok) std::abort();
}

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

void check_lower_copy(std::string_view in) {
  std::string want(in);
  for (char& c : want) c = lower(c);
  std::string out(in.size() + 16, '#');  // bytes past n must stay untouched
  lower_copy(in.data(), in.size(), out.data());
  check(std::string_view(out).substr(0, in.size()) == want);
  for (size_t i = in.size(); i < out.size(); ++i) check(out[i] == '#');
  std::string same(in);
  lower_copy(same.data(), same.size(), same.data());
  check(same == want);
}

void check_accepted_request(const std::vector<Field>& fields) {
  bool regular = false, method = false;
  int content_length = 0;
  for (const Field& f : fields) {
    check(!f.name.empty());
    for (char c : f.name) check(lower(c) == c);
    if (f.name[0] == ':') {
      check(!regular);
      if (f.name == ":method") method = !f.value.empty();
      continue;
    }
    regular = true;
    check(!is_connection_specific(f.name));
    content_length += f.name == "content-length";
  }
  check(method && content_length <= 1);
}

void check_accepted_response(const std::vector<Field>& fields, bool trailers) {
  int statuses = 0;
  for (size_t i = 0; i < fields.size(); ++i) {
    const Field& f = fields[i];
    check(!f.name.empty());
    if (f.name[0] == ':') {
      check(!trailers && i == 0 && f.name == ":status" && f.value.size() == 3);
      ++statuses;
    }
  }
  check(statuses == (trailers ? 0 : 1));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  if (size > 8192) return 0;
  const std::string_view in(reinterpret_cast<const char*>(bytes), size);
  std::vector<Field> fields;
  size_t pos = 0;
  while (pos + 1 < in.size() && fields.size() < 64) {
    const size_t nl = static_cast<uint8_t>(in[pos++]);
    if (pos + nl + 1 > in.size()) break;
    const std::string_view name = in.substr(pos, nl);
    pos += nl;
    const size_t vl = static_cast<uint8_t>(in[pos++]);
    const std::string_view value = in.substr(pos, std::min(vl, in.size() - pos));
    pos += value.size();
    fields.push_back({name, value});
  }
  const bool trailers = pos < in.size() && (in.back() & 1) != 0;

  FieldList list;
  for (const Field& f : fields) {
    check_lower_copy(f.name);
    list.add(f.name, f.value);
  }
  check(list.size() == fields.size());
  for (size_t i = 0; i < fields.size(); ++i) {
    const Field& got = list.fields()[i];
    check(got.name.size() == fields[i].name.size() && got.value == fields[i].value);
    for (size_t k = 0; k < got.name.size(); ++k) check(got.name[k] == lower(fields[i].name[k]));
    const auto first = list.get(got.name);
    check(first.has_value());
    for (size_t j = 0; j < i; ++j) {
      if (list.fields()[j].name == got.name) {
        check(*first == list.fields()[j].value);
        break;
      }
    }
  }

  if (validate_request(fields) == FieldError::kNone) check_accepted_request(fields);
  if (validate_response(fields, trailers) == FieldError::kNone) {
    check_accepted_response(fields, trailers);
  }
  return 0;
}
