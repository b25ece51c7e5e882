// nghttp2's allocations (nghttp2_mem) through the process's operator new/delete, so they share
// the per-thread block cache of the default build (proxy/alloc/block_cache.cc) with everything
// else a request allocates. nghttp2 makes several small allocations per stream (stream state,
// header buffers, HPACK entries), freed and asked for again in bursts like ours.
//
// Its free() carries no size, so blocks go back through the unsized operator delete; its
// realloc() is std::realloc, which needs operator new's blocks to come from malloc: true of the
// block cache, of glibc's own operator new and of tcmalloc (the three OUTRIGGER_MALLOC choices).
// Sanitizer builds hand nghttp2 plain malloc (null here), so ASan sees each nghttp2 block as it is.
#pragma once

#include <nghttp2/nghttp2.h>

namespace outrigger::h2 {

// The nghttp2_mem for new sessions; null means nghttp2's default (malloc).
nghttp2_mem* allocator();

}  // namespace outrigger::h2
