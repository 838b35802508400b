#include "proxy/blob_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <vector>

#include "proxy/direct_io.h"

namespace portcullis::proxy {

namespace {

constexpr uint64_t kAlign = 4096;  // O_DIRECT's alignment of memory, length and offset

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

// Writes all of `data` at `offset`; false (errno set, 0 for a zero-length
// write) when a write fails or makes no progress.
bool WriteAll(int fd, const char* data, size_t n, uint64_t offset) {
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, data, n, static_cast<off_t>(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      if (w == 0) errno = EIO;
      return false;
    }
    data += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
  return true;
}

// fsync of a folder, so that the names in it (a new file, a new subfolder) survive a crash.
bool SyncFolder(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

struct BlobFiles::Open_ {
  uint64_t chunk_bytes = 0;
  int fd = -1;         // buffered
  int direct_fd = -1;  // O_DIRECT, or -1
  ~Open_() {
    if (fd >= 0) ::close(fd);
    if (direct_fd >= 0) ::close(direct_fd);
  }
};

StatusOr<std::unique_ptr<BlobFiles>> BlobFiles::Open(const std::string& root, bool direct) {
  std::error_code ec;
  if (std::filesystem::create_directories(root, ec)) {
    std::filesystem::permissions(root, std::filesystem::perms::owner_all, std::filesystem::perm_options::replace, ec);
  }
  if (ec) return Status::IoError("cannot create the blob folder " + root + ": " + ec.message());
  return std::unique_ptr<BlobFiles>(new BlobFiles(root, direct && DirectWritesWork(root)));
}

BlobFiles::~BlobFiles() = default;

std::string BlobFiles::PathOf(const oci::Digest& d) const {
  return root_ + "/" + d.algorithm() + "/" + d.hex().substr(0, 2) + "/" + d.hex();
}

std::shared_ptr<BlobFiles::Open_> BlobFiles::Writing(const oci::Digest& d) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = writing_.find(d.ToString());
  return it == writing_.end() ? nullptr : it->second;
}

Status BlobFiles::Create(const oci::Digest& d, uint64_t chunk_bytes) {
  if (chunk_bytes == 0) return Status::InvalidArgument("chunk size 0 for " + d.ToString());
  const std::string path = PathOf(d);
  const std::filesystem::path folder = std::filesystem::path(path).parent_path();
  std::error_code ec;
  std::filesystem::create_directories(folder, ec);
  if (ec) return Status::IoError("cannot create " + folder.string() + ": " + ec.message());
  auto f = std::make_shared<Open_>();
  f->chunk_bytes = chunk_bytes;
  f->fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (f->fd < 0) return Status::IoError(Errno("cannot create " + path));
  if (direct_) f->direct_fd = ::open(path.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC);  // -1: buffered only
  std::lock_guard<std::mutex> l(mu_);
  writing_[d.ToString()] = std::move(f);
  return Status::Ok();
}

Status BlobFiles::WriteChunk(const oci::Digest& d, uint64_t index, std::string_view data) {
  auto f = Writing(d);
  if (!f) return Status::IoError("no file of " + d.ToString() + " is open for writing");
  if (data.size() > f->chunk_bytes) {
    return Status::InvalidArgument("a chunk of " + std::to_string(data.size()) + " bytes for " + d.ToString() +
                                   ", whose chunks are " + std::to_string(f->chunk_bytes));
  }
  if (index > UINT64_MAX / f->chunk_bytes) return Status::InvalidArgument("chunk index out of range");
  const uint64_t offset = index * f->chunk_bytes;
  const bool aligned = reinterpret_cast<uintptr_t>(data.data()) % kAlign == 0 && data.size() % kAlign == 0 &&
                       offset % kAlign == 0;
  if (f->direct_fd >= 0 && aligned && WriteAll(f->direct_fd, data.data(), data.size(), offset)) return Status::Ok();
  // Buffered: not aligned, no O_DIRECT, or O_DIRECT refused this write (it is
  // written again whole; a partial direct write is overwritten).
  if (!WriteAll(f->fd, data.data(), data.size(), offset)) {
    return Status::IoError(Errno("writing " + std::to_string(data.size()) + " bytes of " + d.ToString()));
  }
  return Status::Ok();
}

Status BlobFiles::Finish(const oci::Digest& d, uint64_t size) {
  auto f = Writing(d);
  if (!f) return Status::IoError("no file of " + d.ToString() + " is open for writing");
  const std::string path = PathOf(d);
  if (::fdatasync(f->fd) != 0) return Status::IoError(Errno("syncing " + path));
  struct stat st {};
  if (::fstat(f->fd, &st) != 0) return Status::IoError(Errno("stat of " + path));
  if (static_cast<uint64_t>(st.st_size) != size) {
    return Status::IoError(path + " holds " + std::to_string(st.st_size) + " bytes, not " + std::to_string(size));
  }
  // The file's name, and the folders Create may have made, must survive a crash too.
  const std::filesystem::path shard = std::filesystem::path(path).parent_path();
  for (const auto& folder : {shard, shard.parent_path(), shard.parent_path().parent_path()}) {
    if (!SyncFolder(folder.string())) return Status::IoError(Errno("syncing folder " + folder.string()));
  }
  std::lock_guard<std::mutex> l(mu_);
  writing_.erase(d.ToString());
  return Status::Ok();
}

Status BlobFiles::Read(const oci::Digest& d, uint64_t offset, char* buf, size_t n, size_t* got) const {
  *got = 0;
  const std::string path = PathOf(d);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Status::NotFound("no file of " + d.ToString());
    return Status::IoError(Errno("cannot open " + path));
  }
  while (*got < n) {
    const ssize_t r = ::pread(fd, buf + *got, n - *got, static_cast<off_t>(offset + *got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      const Status st = Status::IoError(Errno("reading " + path));
      ::close(fd);
      *got = 0;
      return st;
    }
    if (r == 0) break;  // the end of the file
    *got += static_cast<size_t>(r);
  }
  ::close(fd);
  return Status::Ok();
}

Status BlobFiles::Remove(const oci::Digest& d) {
  {
    std::lock_guard<std::mutex> l(mu_);
    writing_.erase(d.ToString());  // closed once its writer lets go of it
  }
  const std::string path = PathOf(d);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Status::IoError(Errno("cannot delete " + path));
  return Status::Ok();
}

Status BlobFiles::Sweep(const std::function<bool(const oci::Digest&)>& keep, int* removed) {
  *removed = 0;
  std::error_code ec;
  std::vector<std::filesystem::path> doomed;
  for (auto it = std::filesystem::recursive_directory_iterator(root_, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec)) continue;
    const std::filesystem::path& p = it->path();
    const std::string hex = p.filename().string();
    const std::string shard = p.parent_path().filename().string();
    const std::string algorithm = p.parent_path().parent_path().filename().string();
    auto d = oci::Digest::Parse(algorithm + ":" + hex);
    const bool named = d.ok() && hex.compare(0, 2, shard) == 0 && shard.size() == 2 &&
                       p.parent_path().parent_path().parent_path() == std::filesystem::path(root_);
    if (named && (keep(*d) || Writing(*d))) continue;
    doomed.push_back(p);
  }
  if (ec) return Status::IoError("cannot list " + root_ + ": " + ec.message());
  for (const auto& p : doomed) {
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) return Status::IoError(Errno("cannot delete " + p.string()));
    ++*removed;
  }
  return Status::Ok();
}

}  // namespace portcullis::proxy
