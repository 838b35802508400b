#include "signer/pusher.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "oci/registry_read.h"

namespace portcullis::signer {

namespace {

// Closes a file descriptor on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

std::string WithDigestQuery(const std::string& location, const oci::Digest& digest) {
  return location + (location.find('?') == std::string::npos ? "?" : "&") +
         "digest=" + oci::QueryEscape(digest.ToString());
}

Pusher::Pusher(const oci::Remote& remote, std::string repo)
    : remote_(remote),
      repo_(std::move(repo)),
      scope_(oci::PushScope(repo_)),
      transport_(remote.base, remote.credentials, scope_, remote.client_options) {}

StatusOr<bool> Pusher::BlobExists(const oci::Digest& digest) {
  oci::HttpRequest req;
  req.method = "HEAD";
  req.target = "/v2/" + repo_ + "/blobs/" + digest.ToString();
  req.scope = scope_;
  PC_ASSIGN_OR_RETURN(oci::HttpResponse r, client().Do(req));
  if (r.status == 200) return true;
  if (r.status == 404) return false;
  return oci::HttpError("HEAD " + req.target, r);
}

StatusOr<std::string> Pusher::StartUpload() {
  oci::HttpRequest req;
  req.method = "POST";
  req.target = "/v2/" + repo_ + "/blobs/uploads/";
  req.scope = scope_;
  PC_ASSIGN_OR_RETURN(oci::HttpResponse r, client().Do(req));
  if (r.status != 202) return oci::HttpError("POST " + req.target, r);
  std::string location = oci::RepairDecodedLocation(oci::HeaderValue(r.headers, "Location"));
  if (location.empty()) return Status::UpstreamInvalid("POST " + req.target + ": 202 without a Location");
  if (location[0] != '/' && location.rfind("http://", 0) != 0 && location.rfind("https://", 0) != 0) {
    // A relative reference: resolve against the request path's directory.
    location = "/v2/" + repo_ + "/blobs/uploads/" + location;
  }
  return location;
}

StatusOr<bool> Pusher::Upload(const oci::Digest& digest, const BodySource& body, const SentFn& on_sent) {
  PC_ASSIGN_OR_RETURN(bool exists, BlobExists(digest));
  if (exists) return false;
  PC_ASSIGN_OR_RETURN(std::string location, StartUpload());
  const int64_t size = body.size();
  std::string put_url;
  BodySource put_body = body;
  if (size <= kMonolithicMaxBytes || body.fd < 0) {
    put_url = WithDigestQuery(location, digest);
  } else {
    for (int64_t off = 0; off < size; off += kChunkBytes) {
      int64_t n = std::min(kChunkBytes, size - off);
      oci::Headers h;
      h.emplace("Content-Range", std::to_string(off) + "-" + std::to_string(off + n - 1));
      SentFn chunk_sent = on_sent ? SentFn([&, off](int64_t sent) { on_sent(off + sent); }) : SentFn();
      PC_ASSIGN_OR_RETURN(
          oci::HttpResponse r,
          transport_.Send("PATCH", location, h, BodySource::File(body.fd, body.offset + off, n), chunk_sent));
      if (r.status != 202) return oci::HttpError("PATCH upload of " + digest.ToString(), r);
      std::string next = oci::RepairDecodedLocation(oci::HeaderValue(r.headers, "Location"));
      if (!next.empty()) location = next;
    }
    put_url = WithDigestQuery(location, digest);
    put_body = BodySource::Memory("");
  }
  PC_ASSIGN_OR_RETURN(oci::HttpResponse r,
                      transport_.Send("PUT", put_url, {}, put_body, put_body.size() > 0 ? on_sent : nullptr));
  if (r.status != 201 && r.status != 204) return oci::HttpError("PUT upload of " + digest.ToString(), r);
  std::string got = oci::HeaderValue(r.headers, "Docker-Content-Digest");
  if (!got.empty() && got != digest.ToString()) {
    return Status::UpstreamInvalid("registry stored blob " + digest.ToString() + " as " + got);
  }
  return true;
}

StatusOr<bool> Pusher::PushBlob(const oci::Digest& digest, std::string_view bytes) {
  return Upload(digest, BodySource::Memory(bytes), nullptr);
}

StatusOr<bool> Pusher::PushBlobFile(const oci::Digest& digest, const std::string& path, int64_t size,
                                    const SentFn& on_sent) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    return errno == ENOENT ? Status::NotFound(path + ": no such file")
                           : Status::IoError(path + ": " + std::strerror(errno));
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return Status::IoError(path + ": " + std::strerror(errno));
  if (st.st_size != size) {
    return Status::SizeInvalid(path + " is " + std::to_string(st.st_size) + " bytes, its descriptor says " +
                               std::to_string(size));
  }
  return Upload(digest, BodySource::File(fd.get(), 0, size), on_sent);
}

StatusOr<oci::Digest> Pusher::PushManifest(std::string_view bytes, std::string_view media_type,
                                           const std::string& ref) {
  oci::HttpRequest req;
  req.method = "PUT";
  req.target = "/v2/" + repo_ + "/manifests/" + ref;
  req.body = std::string(bytes);
  req.content_type = std::string(media_type);
  req.scope = scope_;
  PC_ASSIGN_OR_RETURN(oci::HttpResponse r, client().Do(req));
  if (r.status != 201 && r.status != 200 && r.status != 204) return oci::HttpError("PUT " + req.target, r);
  oci::Digest d = oci::Digest::Sha256Of(bytes);
  std::string got = oci::HeaderValue(r.headers, "Docker-Content-Digest");
  if (!got.empty() && got != d.ToString()) {
    return Status::UpstreamInvalid("PUT " + req.target + ": registry says the manifest is " + got +
                                   ", its bytes hash to " + d.ToString());
  }
  return d;
}

}  // namespace portcullis::signer
