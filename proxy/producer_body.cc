#include "proxy/producer_body.h"

#include <condition_variable>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>

namespace portcullis::proxy {

namespace {

struct Pipe {
  std::mutex mu;
  std::condition_variable cv;
  std::string buffer;
  size_t max = 0;
  bool done = false;
  bool failed = false;
  bool abandoned = false;  // the response ended: drop what is emitted
};

class ProducerSource : public BodySource {
 public:
  explicit ProducerSource(std::shared_ptr<Pipe> pipe) : pipe_(std::move(pipe)) {}
  ~ProducerSource() override {
    std::lock_guard<std::mutex> l(pipe_->mu);
    pipe_->abandoned = true;
    pipe_->cv.notify_all();
  }

  Result Next(std::string* out, size_t max) override {
    std::lock_guard<std::mutex> l(pipe_->mu);
    if (!pipe_->buffer.empty()) {
      const size_t n = std::min(max, pipe_->buffer.size());
      out->append(pipe_->buffer, 0, n);
      pipe_->buffer.erase(0, n);
      pipe_->cv.notify_all();
      return Result::kData;
    }
    if (pipe_->failed) return Result::kFailed;
    if (pipe_->done) return Result::kEnd;
    return Result::kWait;
  }

 private:
  std::shared_ptr<Pipe> pipe_;
};

}  // namespace

std::unique_ptr<BodySource> ProducerBody(std::function<bool(const Emit&)> produce, size_t max_buffered,
                                         std::atomic<int>* running) {
  auto pipe = std::make_shared<Pipe>();
  pipe->max = max_buffered;
  if (running) ++*running;
  try {
    std::thread([pipe, produce = std::move(produce), running] {
      Emit emit = [&pipe](std::string_view piece) {
        std::unique_lock<std::mutex> l(pipe->mu);
        pipe->cv.wait(l, [&] { return pipe->abandoned || pipe->buffer.size() < pipe->max; });
        if (!pipe->abandoned) pipe->buffer.append(piece);
      };
      bool ok = false;
      try {
        ok = produce(emit);
      } catch (...) {
        ok = false;
      }
      {
        std::lock_guard<std::mutex> l(pipe->mu);
        (ok ? pipe->done : pipe->failed) = true;
      }
      if (running) --*running;
    }).detach();
  } catch (const std::system_error&) {
    if (running) --*running;
    pipe->failed = true;
  }
  return std::make_unique<ProducerSource>(pipe);
}

}  // namespace portcullis::proxy
