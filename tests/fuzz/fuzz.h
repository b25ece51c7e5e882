// Shared by the libFuzzer targets in this folder.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <string_view>

// A property: when it fails, the file, line and expression are printed before the abort, and
// libFuzzer then reports the input.
#define check(ok)                                                                         \
  ((ok) ? (void)0                                                                         \
        : (std::fprintf(stderr, "%s:%d: %s\n", __FILE_NAME__, __LINE__, #ok), std::abort()))

namespace fuzz {

using Mode = void (*)(std::string_view);

// An input of one mode byte, then the text the mode reads: runs modes[byte % count] on the text.
// Inputs empty or over max_size bytes are skipped.
inline int by_mode(const uint8_t* bytes, size_t size, size_t max_size,
                   std::initializer_list<Mode> modes) {
  if (size < 1 || size > max_size) return 0;
  const std::string_view text(reinterpret_cast<const char*>(bytes + 1), size - 1);
  modes.begin()[bytes[0] % modes.size()](text);
  return 0;
}

}  // namespace fuzz
