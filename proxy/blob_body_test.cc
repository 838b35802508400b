// Range selection for blob GETs (review L1: a range past the end was not
// clamped; several ranges were answered as one).
#include "proxy/blob_body.h"

#include <doctest/doctest.h>

namespace {

using portcullis::proxy::PickRange;
using portcullis::proxy::RangePick;

TEST_CASE("blob body: Range picks one range, clamps its end, refuses a start past the end") {
  struct Case {
    const char* header;
    uint64_t size;
    RangePick::Kind kind;
    uint64_t first, end;
  };
  const Case cases[] = {
      {"", 100, RangePick::kWhole, 0, 100},
      {"bytes=0-9", 100, RangePick::kPartial, 0, 10},
      {"bytes=10-", 100, RangePick::kPartial, 10, 100},
      {"bytes=90-500", 100, RangePick::kPartial, 90, 100},  // clamped
      {"bytes=99-99", 100, RangePick::kPartial, 99, 100},
      {"bytes=-10", 100, RangePick::kPartial, 90, 100},
      {"bytes=-500", 100, RangePick::kPartial, 0, 100},      // suffix longer than the blob
      {"bytes=100-", 100, RangePick::kUnsatisfiable, 0, 0},
      {"bytes=999999999999-", 100, RangePick::kUnsatisfiable, 0, 0},
      {"bytes=-0", 100, RangePick::kUnsatisfiable, 0, 0},
      {"bytes=0-1,5-6", 100, RangePick::kWhole, 0, 100},     // several: the whole blob, 200
      {"bytes=5-2", 100, RangePick::kWhole, 0, 100},         // invalid: ignored
      {"items=0-5", 100, RangePick::kWhole, 0, 100},
      {"bytes=abc", 100, RangePick::kWhole, 0, 100},
  };
  for (const auto& c : cases) {
    CAPTURE(c.header);
    RangePick p = PickRange(c.header, c.size);
    CHECK(p.kind == c.kind);
    if (c.kind != RangePick::kUnsatisfiable) {
      CHECK(p.first == c.first);
      CHECK(p.end == c.end);
    }
  }
}

}  // namespace
