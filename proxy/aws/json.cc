#include "proxy/aws/json.h"

#include <cstdint>

namespace outrigger::aws::json {
namespace {

// A cursor over the document; every error names the byte offset and the reason, never the text.
class Reader {
 public:
  explicit Reader(std::string_view text) : s_(text) {}

  void skip_ws() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  size_t pos() const { return pos_; }
  std::string_view text() const { return s_; }

  bool fail(const char* why) {
    if (error_.empty()) error_ = std::string(why) + " at offset " + std::to_string(pos_);
    return false;
  }
  const std::string& error() const { return error_; }

  // Validates one value starting at pos_ (no leading whitespace) and reports its kind and text.
  bool value(Value& out, int depth) {
    if (depth > kMaxDepth) return fail("nesting too deep");
    size_t start = pos_;
    char c = peek();
    bool ok;
    if (c == '"') {
      out.kind = Kind::kString;
      ok = string();
    } else if (c == '{') {
      out.kind = Kind::kObject;
      ok = container('}', depth);
    } else if (c == '[') {
      out.kind = Kind::kArray;
      ok = container(']', depth);
    } else if (c == 't') {
      out.kind = Kind::kTrue;
      ok = literal("true");
    } else if (c == 'f') {
      out.kind = Kind::kFalse;
      ok = literal("false");
    } else if (c == 'n') {
      out.kind = Kind::kNull;
      ok = literal("null");
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      out.kind = Kind::kNumber;
      ok = number();
    } else {
      return fail(at_end() ? "unexpected end" : "unexpected character");
    }
    if (ok) out.raw = s_.substr(start, pos_ - start);
    return ok;
  }

  // Object members or array elements at pos_ ('{' or '['); calls on_member/on_element for the
  // top level only when given.
  template <class OnMember>
  bool object(int depth, OnMember&& on_member) {
    ++pos_;  // '{'
    skip_ws();
    if (peek() == '}') {
      ++pos_;
      return true;
    }
    for (;;) {
      skip_ws();
      if (peek() != '"') return fail("expected a member name");
      size_t key_start = pos_;
      if (!string()) return false;
      std::string_view key_raw = s_.substr(key_start, pos_ - key_start);
      skip_ws();
      if (peek() != ':') return fail("expected ':'");
      ++pos_;
      skip_ws();
      Value v;
      if (!value(v, depth + 1)) return false;
      if (!on_member(key_raw, v)) return false;
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == '}') {
        ++pos_;
        return true;
      }
      return fail("expected ',' or '}'");
    }
  }

  template <class OnElement>
  bool array(int depth, OnElement&& on_element) {
    ++pos_;  // '['
    skip_ws();
    if (peek() == ']') {
      ++pos_;
      return true;
    }
    for (;;) {
      skip_ws();
      Value v;
      if (!value(v, depth + 1)) return false;
      on_element(v);
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == ']') {
        ++pos_;
        return true;
      }
      return fail("expected ',' or ']'");
    }
  }

 private:
  bool container(char close, int depth) {
    if (close == '}') return object(depth, [](std::string_view, const Value&) { return true; });
    return array(depth, [](const Value&) {});
  }

  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return fail("invalid literal");
    pos_ += word.size();
    return true;
  }

  bool digits() {
    size_t start = pos_;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
    return pos_ > start;
  }

  bool number() {
    if (peek() == '-') ++pos_;
    if (peek() == '0') {
      ++pos_;
    } else if (!digits()) {
      return fail("invalid number");
    }
    if (peek() == '.') {
      ++pos_;
      if (!digits()) return fail("invalid number");
    }
    if (peek() == 'e' || peek() == 'E') {
      ++pos_;
      if (peek() == '+' || peek() == '-') ++pos_;
      if (!digits()) return fail("invalid number");
    }
    return true;
  }

  bool string() {
    ++pos_;  // opening quote
    while (pos_ < s_.size()) {
      unsigned char c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c < 0x20) return fail("control character in string");
      if (c == '\\') {
        ++pos_;
        if (at_end()) break;
        char e = s_[pos_];
        if (e == 'u') {
          for (int i = 1; i <= 4; ++i) {
            if (pos_ + i >= s_.size() || !is_hex(s_[pos_ + i])) return fail("invalid \\u escape");
          }
          pos_ += 4;
        } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
          return fail("invalid escape");
        }
      }
      ++pos_;
    }
    return fail("unterminated string");
  }

  static bool is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  }

  std::string_view s_;
  size_t pos_ = 0;
  std::string error_;
};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace

std::expected<std::vector<Member>, std::string> parse_object(std::string_view text) {
  Reader r(text);
  r.skip_ws();
  if (r.peek() != '{')
    return std::unexpected("expected a JSON object at offset " + std::to_string(r.pos()));
  std::vector<Member> members;
  std::string decode_error;
  bool ok = r.object(1, [&](std::string_view key_raw, const Value& v) {
    auto key = decode_string(key_raw);
    if (!key) {
      decode_error = key.error();
      return false;
    }
    members.push_back(Member{std::move(*key), v});
    return true;
  });
  if (!decode_error.empty()) return std::unexpected(decode_error);
  if (!ok) return std::unexpected(r.error());
  r.skip_ws();
  if (!r.at_end()) return std::unexpected("trailing data at offset " + std::to_string(r.pos()));
  return members;
}

std::expected<std::vector<Value>, std::string> parse_array(std::string_view text) {
  Reader r(text);
  r.skip_ws();
  if (r.peek() != '[')
    return std::unexpected("expected a JSON array at offset " + std::to_string(r.pos()));
  std::vector<Value> elements;
  if (!r.array(1, [&](const Value& v) { elements.push_back(v); })) {
    return std::unexpected(r.error());
  }
  r.skip_ws();
  if (!r.at_end()) return std::unexpected("trailing data at offset " + std::to_string(r.pos()));
  return elements;
}

std::expected<std::string, std::string> decode_string(std::string_view raw) {
  if (raw.size() < 2 || raw.front() != '"' || raw.back() != '"') {
    return std::unexpected("not a JSON string");
  }
  std::string out;
  out.reserve(raw.size() - 2);
  auto read_u16 = [&](size_t at) -> int {
    if (at + 4 > raw.size() - 1) return -1;
    int v = 0;
    for (size_t i = at; i < at + 4; ++i) {
      char c = raw[i];
      bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
      if (!hex) return -1;
      v = v * 16 + hex_value(c);
    }
    return v;
  };
  for (size_t i = 1; i + 1 < raw.size(); ++i) {
    char c = raw[i];
    if (static_cast<unsigned char>(c) < 0x20) return std::unexpected("control character in string");
    if (c == '"') return std::unexpected("unescaped quote in string");
    if (c != '\\') {
      out += c;
      continue;
    }
    if (++i + 1 > raw.size() - 1) return std::unexpected("truncated escape");
    switch (raw[i]) {
      case '"':
        out += '"';
        break;
      case '\\':
        out += '\\';
        break;
      case '/':
        out += '/';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'u': {
        int hi = read_u16(i + 1);
        if (hi < 0) return std::unexpected("invalid \\u escape");
        i += 4;
        uint32_t cp = static_cast<uint32_t>(hi);
        if (cp >= 0xDC00 && cp <= 0xDFFF) return std::unexpected("lone low surrogate");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (i + 2 >= raw.size() - 1 || raw[i + 1] != '\\' || raw[i + 2] != 'u') {
            return std::unexpected("lone high surrogate");
          }
          int lo = read_u16(i + 3);
          if (lo < 0xDC00 || lo > 0xDFFF) return std::unexpected("lone high surrogate");
          i += 6;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (static_cast<uint32_t>(lo) - 0xDC00);
        }
        append_utf8(out, cp);
        break;
      }
      default:
        return std::unexpected("invalid escape");
    }
  }
  return out;
}

const Member* find_member(const std::vector<Member>& members, std::string_view key) {
  const Member* found = nullptr;
  for (const Member& m : members) {
    if (m.key == key) found = &m;
  }
  return found;
}

std::expected<std::string, std::string> string_member(const std::vector<Member>& members,
                                                      std::string_view key) {
  const Member* m = find_member(members, key);
  if (m == nullptr) return std::unexpected("missing field " + std::string(key));
  if (m->value.kind != Kind::kString) {
    return std::unexpected("field " + std::string(key) + " is not a string");
  }
  auto s = decode_string(m->value.raw);
  if (!s) return std::unexpected("field " + std::string(key) + ": " + s.error());
  return s;
}

}  // namespace outrigger::aws::json
