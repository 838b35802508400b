#include "keys/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace portcullis::keys {

namespace {

std::string ErrnoText(int err) { return std::strerror(err); }

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IoError("writing " + path + ": " + ErrnoText(errno));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

void SyncDir(const std::string& path) {
  int dfd = ::open(DirName(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace

StatusOr<std::string> ReadSmallFile(const std::string& path, size_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) return Status::NotFound(path + ": no such file");
    return Status::IoError("opening " + path + ": " + ErrnoText(err));
  }
  std::string out;
  char buf[8192];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return Status::IoError("reading " + path + ": " + ErrnoText(err));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_bytes) {
      ::close(fd);
      return Status::InvalidArgument(path + ": file is larger than " + std::to_string(max_bytes) + " bytes");
    }
  }
  ::close(fd);
  return out;
}

StatusOr<SecretBytes> ReadSecretFile(const std::string& path, size_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) return Status::NotFound(path + ": no such file");
    return Status::IoError("opening " + path + ": " + ErrnoText(err));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return Status::IoError("stat " + path + ": " + ErrnoText(err));
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    ::close(fd);
    return Status::InvalidArgument(path + ": file is larger than " + std::to_string(max_bytes) + " bytes");
  }
  // One spare byte detects a file that grew since fstat.
  SecretBytes out(static_cast<size_t>(st.st_size) + 1);
  size_t n = 0;
  while (n < out.size()) {
    ssize_t r = ::read(fd, out.data() + n, out.size() - n);
    if (r < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return Status::IoError("reading " + path + ": " + ErrnoText(err));
    }
    if (r == 0) break;
    n += static_cast<size_t>(r);
  }
  ::close(fd);
  if (n == out.size()) return Status::IoError(path + ": file changed while being read");
  out.Truncate(n);
  return out;
}

bool PathExists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

Status WriteFileAtomically(const std::string& path, std::string_view data, mode_t mode, bool overwrite) {
  if (path.empty()) return Status::InvalidArgument("empty output path");
  if (!overwrite && PathExists(path)) {
    return Status::AlreadyExists(path + " already exists (use --force to overwrite)");
  }
  std::string tmp = path + ".tmp-XXXXXX";
  int fd = ::mkstemp(tmp.data());
  if (fd < 0) return Status::IoError("creating a temporary file beside " + path + ": " + ErrnoText(errno));
  auto fail = [&](Status st) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return st;
  };
  if (::fchmod(fd, mode) != 0) return fail(Status::IoError("chmod " + tmp + ": " + ErrnoText(errno)));
  Status st = WriteAll(fd, data, tmp);
  if (!st.ok()) return fail(st);
  if (::fsync(fd) != 0) return fail(Status::IoError("fsync " + tmp + ": " + ErrnoText(errno)));
  if (::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return Status::IoError("closing " + tmp + ": " + ErrnoText(err));
  }
  if (!overwrite) {
    // link(2) fails with EEXIST instead of replacing: an atomic no-clobber move.
    if (::link(tmp.c_str(), path.c_str()) == 0) {
      ::unlink(tmp.c_str());
      SyncDir(path);
      return Status::Ok();
    }
    int err = errno;
    if (err == EEXIST) {
      ::unlink(tmp.c_str());
      return Status::AlreadyExists(path + " already exists (use --force to overwrite)");
    }
    // No hard links on this filesystem: fall back to check-then-rename below.
    if (PathExists(path)) {
      ::unlink(tmp.c_str());
      return Status::AlreadyExists(path + " already exists (use --force to overwrite)");
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return Status::IoError("renaming " + tmp + " to " + path + ": " + ErrnoText(err));
  }
  SyncDir(path);
  return Status::Ok();
}

}  // namespace portcullis::keys
