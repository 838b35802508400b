#include "proxy/direct_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace portcullis::proxy {

bool DirectWritesWork(const std::string& dir) {
  constexpr size_t kBlock = 4096;  // the alignment every O_DIRECT file system accepts
  const std::string path = dir + "/.direct-io-probe";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  void* buf = nullptr;
  bool ok = false;
  if (::posix_memalign(&buf, kBlock, kBlock) == 0) {
    std::memset(buf, 0, kBlock);
    ok = ::pwrite(fd, buf, kBlock, 0) == static_cast<ssize_t>(kBlock);
    std::free(buf);
  }
  ::close(fd);
  ::unlink(path.c_str());
  return ok;
}

}  // namespace portcullis::proxy
