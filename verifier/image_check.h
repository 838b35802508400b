// A policy decision for an image in a registry, as the CLI needs it
// (`portcullis verify --policy`, `portcullis policy test`): parse the reference,
// resolve its digest, find its signatures (RegistrySignatureSource), evaluate.
// The canonical name is "<registry as written>/<repository>" (docker.io for
// Docker Hub).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "oci/digest.h"
#include "oci/status.h"
#include "verifier/policy.h"
#include "oci/remote.h"

namespace portcullis::verifier {

struct ImageCheck {
  std::string image;  // as given
  std::string name;   // canonical name
  std::string tag;    // "" when referenced by digest only
  oci::Digest digest;
  bool signatures_looked_up = false;
  bool referrers_api = false;  // when looked up: the registry has the referrers API
  Decision decision;
};

// Errors: a malformed reference (INVALID_ARGUMENT), registry failures (as
// ConnectRegistry / ResolveDigest / the signature source return them). A
// refusal is a Decision, not an error.
StatusOr<ImageCheck> CheckImage(const Policy& policy, const std::string& image, const oci::RemoteOptions& options);

// {"image","name","tag","digest","policy":{"path","format","version"},"rule",
//  "verdict","allowed","warn","reason","keys_matched","signatures_found","details"}
nlohmann::json ImageCheckJson(const ImageCheck& check, const Policy& policy);

}  // namespace portcullis::verifier
