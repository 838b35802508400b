#include "proxy/blob_body.h"

#include <httplib.h>

#include <algorithm>

#include "proxy/log.h"

namespace portcullis::proxy {

namespace {

using SteadyClock = std::chrono::steady_clock;

// Next() for a source whose NextPiece() shares memory: a copy of the piece.
BodySource::Result CopyOf(BodySource* source, std::string* out, size_t max) {
  BodyPiece piece;
  const BodySource::Result r = source->NextPiece(&piece, max);
  out->append(piece.data, piece.size);
  return r;
}

class StoreSource : public BodySource {
 public:
  StoreSource(Store* store, oci::Digest d, uint64_t cb, uint64_t first, uint64_t end)
      : pin_(store, d), store_(store), d_(std::move(d)), cb_(cb), offset_(first), end_(end) {}

  Result Next(std::string* out, size_t max) override { return CopyOf(this, out, max); }

  // The chunk as RocksDB read it (its own buffer), shared with the engine: no copy.
  Result NextPiece(BodyPiece* out, size_t max) override {
    if (offset_ >= end_) return Result::kEnd;
    auto chunk = std::make_shared<rocksdb::PinnableSlice>();
    const uint64_t in = offset_ % cb_;
    Status st = store_->ReadChunk(d_, offset_ / cb_, chunk.get());
    if (!st.ok() || chunk->size() <= in) {
      Log(LogLevel::kError, "cached blob is missing a chunk; connection cut",
          {{"digest", d_.ToString()}, {"offset", offset_}, {"error", st.ToString()}});
      return Result::kFailed;
    }
    const uint64_t n = std::min<uint64_t>({chunk->size() - in, max, end_ - offset_});
    out->data = chunk->data() + in;
    out->size = static_cast<size_t>(n);
    out->owner = std::move(chunk);
    offset_ += n;
    return offset_ >= end_ ? Result::kEnd : Result::kData;
  }

 private:
  StorePin pin_;
  Store* store_;
  const oci::Digest d_;
  const uint64_t cb_;
  uint64_t offset_;
  const uint64_t end_;
};

class FetchSource : public BodySource {
 public:
  FetchSource(Store* store, std::shared_ptr<BlobFetch> fetch, uint64_t first, uint64_t end,
              std::chrono::seconds stall)
      : pin_(store, fetch->digest()),
        fetch_(std::move(fetch)),
        cursor_(fetch_->AddCursor(first)),
        offset_(first),
        end_(end),
        stall_(stall),
        progress_(SteadyClock::now()) {}
  ~FetchSource() override { fetch_->RemoveCursor(cursor_); }
  FetchSource(const FetchSource&) = delete;
  FetchSource& operator=(const FetchSource&) = delete;

  Result Next(std::string* out, size_t max) override { return CopyOf(this, out, max); }

  // The window's chunk (or the store's), shared with the engine: no copy.
  Result NextPiece(BodyPiece* out, size_t max) override {
    if (offset_ >= end_) return Result::kEnd;
    // The response's last byte (or, size unknown, the blob's) waits for the digest.
    const uint64_t hold_at = end_ == UINT64_MAX ? UINT64_MAX : end_ - 1;
    const size_t want = static_cast<size_t>(std::min<uint64_t>(max, end_ - offset_));
    switch (fetch_->ReadPiece(offset_, want, hold_at, out, std::chrono::milliseconds(0))) {
      case BlobFetch::ReadResult::kData:
        offset_ += out->size;
        fetch_->MoveCursor(cursor_, offset_);  // serving through, the window waits for this reader
        progress_ = SteadyClock::now();
        return offset_ >= end_ ? Result::kEnd : Result::kData;
      case BlobFetch::ReadResult::kEnd:
        return end_ == UINT64_MAX ? Result::kEnd : Result::kFailed;  // a known length not reached: cut
      case BlobFetch::ReadResult::kFailed:
        return Result::kFailed;
      case BlobFetch::ReadResult::kTimeout:
        if (SteadyClock::now() - progress_ > stall_) {
          Log(LogLevel::kWarn, "upstream fetch stalled; client connection cut",
              {{"digest", fetch_->digest().ToString()}, {"offset", offset_}});
          return Result::kFailed;
        }
        return Result::kWait;
    }
    return Result::kFailed;
  }

 private:
  StorePin pin_;
  std::shared_ptr<BlobFetch> fetch_;
  const uint64_t cursor_;
  uint64_t offset_;
  const uint64_t end_;
  const std::chrono::seconds stall_;
  SteadyClock::time_point progress_;
};

}  // namespace

std::unique_ptr<BodySource> StoreBody(Store* store, const oci::Digest& d, uint64_t chunk_bytes, uint64_t first,
                                      uint64_t end) {
  return std::make_unique<StoreSource>(store, d, chunk_bytes, first, end);
}

std::unique_ptr<BodySource> FetchBody(Store* store, std::shared_ptr<BlobFetch> fetch, uint64_t first, uint64_t end,
                                      std::chrono::seconds stall) {
  return std::make_unique<FetchSource>(store, std::move(fetch), first, end, stall);
}

RangePick PickRange(const std::string& range_header, uint64_t size) {
  RangePick whole{RangePick::kWhole, 0, size};
  if (range_header.empty()) return whole;
  httplib::Ranges ranges;
  // cpp-httplib's parser; anything it refuses is ignored, as RFC 9110 allows.
  if (!httplib::detail::parse_range_header(range_header, ranges) || ranges.size() != 1) return whole;
  const auto [first, last] = ranges.front();
  RangePick p{RangePick::kPartial, 0, 0};
  if (first < 0 && last < 0) return whole;  // "bytes=-": nothing narrower asked
  if (first < 0) {                          // suffix: the last `last` bytes
    if (last == 0 || size == 0) return {RangePick::kUnsatisfiable, 0, 0};
    const uint64_t n = std::min<uint64_t>(static_cast<uint64_t>(last), size);
    p.first = size - n;
    p.end = size;
    return p;
  }
  if (static_cast<uint64_t>(first) >= size) return {RangePick::kUnsatisfiable, 0, 0};
  p.first = static_cast<uint64_t>(first);
  p.end = last < 0 ? size : std::min<uint64_t>(static_cast<uint64_t>(last) + 1, size);
  if (p.end <= p.first) return whole;
  return p;
}

}  // namespace portcullis::proxy
