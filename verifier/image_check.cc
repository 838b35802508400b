#include "verifier/image_check.h"

#include "oci/reference.h"
#include "verifier/discovery.h"
#include "oci/registry_read.h"

namespace portcullis::verifier {

namespace {

// A SignatureSource that records whether it was asked.
class RecordingSource : public SignatureSource {
 public:
  explicit RecordingSource(RegistrySignatureSource& inner) : inner_(inner) {}
  StatusOr<std::vector<FoundSignature>> Find(const oci::Digest& digest) override {
    asked = true;
    return inner_.Find(digest);
  }
  bool asked = false;

 private:
  RegistrySignatureSource& inner_;
};

}  // namespace

StatusOr<ImageCheck> CheckImage(const Policy& policy, const std::string& image, const oci::RemoteOptions& options) {
  auto ref = oci::ParseReference(image);
  if (!ref.ok()) return Status::InvalidArgument(image + ": " + ref.status().message());
  PC_ASSIGN_OR_RETURN(oci::Remote remote, oci::ConnectRegistry(ref->registry, options));
  const std::string scope = oci::PullScope(ref->repository);
  ImageCheck out;
  out.image = image;
  out.name = ref->Name();
  out.tag = ref->tag;
  PC_ASSIGN_OR_RETURN(out.digest, oci::ResolveDigest(*remote.client, ref->repository, ref->Ref(), scope));
  if (ref->digest && out.digest != *ref->digest) {
    return Status::UpstreamInvalid("the registry answered " + out.digest.ToString() + " for " + ref->ToString());
  }
  RegistrySignatureSource registry(*remote.client, ref->repository, scope);
  RecordingSource source(registry);
  PC_ASSIGN_OR_RETURN(out.decision, policy.Evaluate(out.name, out.tag, out.digest, source));
  out.signatures_looked_up = source.asked;
  out.referrers_api = registry.referrers_api();
  return out;
}

nlohmann::json ImageCheckJson(const ImageCheck& c, const Policy& policy) {
  const Decision& d = c.decision;
  nlohmann::json j = {
      {"image", c.image},
      {"name", c.name},
      {"tag", c.tag},
      {"digest", c.digest.ToString()},
      {"policy", {{"path", policy.origin()}, {"format", policy.format()}, {"version", policy.version()}}},
      {"rule", d.rule},
      {"verdict", d.verdict()},
      {"allowed", d.allowed},
      {"warn", d.warn_only},
      {"reason", d.reason},
      {"keys_matched", d.keys_matched},
      {"signatures_found", d.signatures_found},
      {"details", d.details},
  };
  if (c.signatures_looked_up) j["referrers_api"] = c.referrers_api;
  return j;
}

}  // namespace portcullis::verifier
