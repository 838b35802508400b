#include "signer/layout.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace portcullis::signer {

namespace {

using nlohmann::json;

StatusOr<std::string> ReadFile(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound(path + ": cannot open");
  std::string out;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    out.append(buf, static_cast<size_t>(in.gcount()));
    if (out.size() > max_bytes) return Status::SizeInvalid(path + " is over " + std::to_string(max_bytes) + " bytes");
  }
  if (in.bad()) return Status::IoError(path + ": read error");
  return out;
}

std::string BlobPath(const std::string& dir, const oci::Digest& d) {
  return dir + "/blobs/" + d.algorithm() + "/" + d.hex();
}

class LayoutPusher {
 public:
  LayoutPusher(Pusher& pusher, const std::string& dir, const PushObserver& observer)
      : pusher_(pusher), dir_(dir), observer_(observer) {}

  // Pushes the manifest `desc` and everything below it; tags it `ref`.
  StatusOr<std::string> PushManifest(const oci::Descriptor& desc, const std::string& ref, int depth) {
    if (depth > 8) return Status::ManifestInvalid("indexes nested too deeply in " + dir_);
    const std::string path = BlobPath(dir_, desc.digest);
    PC_ASSIGN_OR_RETURN(std::string bytes, ReadFile(path, oci::kMaxManifestBytes));
    if (oci::Digest::Sha256Of(bytes) != desc.digest || static_cast<int64_t>(bytes.size()) != desc.size) {
      return Status::DigestInvalid(path + " does not match its descriptor (" + desc.digest.ToString() + ", " +
                                   std::to_string(desc.size) + " bytes)");
    }
    auto parsed = oci::ParseManifest(bytes, desc.media_type);
    if (!parsed.ok()) return parsed.status().Annotate(path);
    if (parsed->IsIndex()) {
      for (const oci::Descriptor& child : parsed->manifests) {
        if (done_manifests_.count(child.digest) != 0) continue;
        PC_RETURN_IF_ERROR(PushManifest(child, child.digest.ToString(), depth + 1).status());
      }
    } else {
      for (const oci::Descriptor& blob : parsed->Blobs()) PC_RETURN_IF_ERROR(PushBlob(blob));
    }
    PC_ASSIGN_OR_RETURN(oci::Digest pushed, pusher_.PushManifest(bytes, parsed->media_type, ref));
    done_manifests_.insert(pushed);
    ++result_.manifests_pushed;
    if (observer_) observer_({PushEvent::kManifestDone, pushed, desc.size, desc.size});
    return parsed->media_type;
  }

  PushedLayout& result() { return result_; }

 private:
  Status PushBlob(const oci::Descriptor& blob) {
    if (!done_blobs_.insert(blob.digest).second) return Status::Ok();
    const std::string path = BlobPath(dir_, blob.digest);
    PC_ASSIGN_OR_RETURN(bool exists, pusher_.BlobExists(blob.digest));
    if (exists) {
      ++result_.blobs_skipped;
      if (observer_) observer_({PushEvent::kBlobSkipped, blob.digest, blob.size, 0});
      return Status::Ok();
    }
    if (observer_) observer_({PushEvent::kBlobStart, blob.digest, blob.size, 0});
    SentFn on_sent;
    if (observer_) {
      on_sent = [&](int64_t sent) { observer_({PushEvent::kBlobProgress, blob.digest, blob.size, sent}); };
    }
    auto uploaded = pusher_.PushBlobFile(blob.digest, path, blob.size, on_sent);
    if (!uploaded.ok()) return uploaded.status().Annotate("blob " + blob.digest.ToString());
    if (*uploaded) {
      ++result_.blobs_uploaded;
    } else {
      ++result_.blobs_skipped;  // appeared meanwhile
    }
    if (observer_) observer_({PushEvent::kBlobDone, blob.digest, blob.size, blob.size});
    return Status::Ok();
  }

  Pusher& pusher_;
  const std::string& dir_;
  const PushObserver& observer_;
  std::set<oci::Digest> done_blobs_;
  std::set<oci::Digest> done_manifests_;
  PushedLayout result_;
};

}  // namespace

StatusOr<oci::Descriptor> SelectLayoutManifest(const std::string& dir, const std::string& ref) {
  const std::string index_path = dir + "/index.json";
  auto text = ReadFile(index_path, oci::kMaxManifestBytes);
  if (!text.ok()) {
    return Status::InvalidArgument(dir + " is not an OCI image layout (" + text.status().message() + ")");
  }
  json j = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Status::InvalidArgument(index_path + " is not a JSON object");
  auto ms = j.find("manifests");
  if (ms == j.end() || !ms->is_array()) return Status::InvalidArgument(index_path + " has no manifests array");
  // Parse the descriptors with the shared manifest parser by presenting index.json as an index.
  json as_index = j;
  as_index["mediaType"] = std::string(oci::kOciIndex);
  auto parsed = oci::ParseManifest(as_index.dump(), oci::kOciIndex);
  if (!parsed.ok()) return Status::InvalidArgument(index_path + ": " + parsed.status().message());
  std::vector<oci::Descriptor> matches;
  std::string names;
  for (const oci::Descriptor& d : parsed->manifests) {
    auto it = d.annotations.find(std::string(kRefNameAnnotation));
    std::string name = it == d.annotations.end() ? "" : it->second;
    names += (names.empty() ? "" : ", ") + (name.empty() ? d.digest.ToString() : name);
    if (ref.empty() || name == ref) matches.push_back(d);
  }
  if (parsed->manifests.empty()) return Status::InvalidArgument(index_path + " lists no manifests");
  if (ref.empty() && matches.size() > 1) {
    return Status::InvalidArgument(dir + " holds " + std::to_string(matches.size()) + " manifests; choose one with " +
                                   dir + ":REF (refs: " + names + ")");
  }
  if (matches.empty()) return Status::NotFound(dir + " has no manifest named \"" + ref + "\" (refs: " + names + ")");
  if (matches.size() > 1) {
    return Status::InvalidArgument(dir + " has " + std::to_string(matches.size()) + " manifests named \"" + ref + "\"");
  }
  if (matches[0].media_type.empty()) matches[0].media_type = std::string(oci::kOciManifest);
  return matches[0];
}

StatusOr<PushedLayout> PushLayout(Pusher& pusher, const std::string& layout_dir, const oci::Descriptor& top,
                                  const std::string& tag, const PushObserver& observer) {
  LayoutPusher lp(pusher, layout_dir, observer);
  PC_ASSIGN_OR_RETURN(std::string media_type, lp.PushManifest(top, tag, 0));
  PushedLayout out = lp.result();
  out.digest = top.digest;
  out.media_type = media_type;
  return out;
}

}  // namespace portcullis::signer
