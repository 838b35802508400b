#include "cli/verify_report.h"

#include <iostream>
#include <nlohmann/json.hpp>

#include "keys/files.h"
#include "verifier/bundle_check.h"
#include "verifier/signatures.h"
#include "verifier/sigstore/bundle.h"

namespace portcullis::cli {

namespace {

using nlohmann::json;

// What cosign v3's `verify` prints for a verified image-signature bundle.
json BundlePayload(const std::string& name, const oci::Digest& digest) {
  return json{{"critical",
               {{"identity", {{"docker-reference", name}}},
                {"image", {{"docker-manifest-digest", digest.ToString()}}},
                {"type", std::string(verifier::kCosignSignPredicateType)}}},
              {"optional", json::object()}};
}

std::string What(bool bundle) { return bundle ? "Sigstore bundle " : "signature layer "; }

}  // namespace

StatusOr<verifier::sigstore::TrustedRoot> LoadTrustedRoot(const std::string& path) {
  if (path.empty()) return verifier::sigstore::TrustedRoot::PublicGood();
  auto text = keys::ReadSmallFile(path, 4 << 20);
  if (!text.ok()) return text.status();
  auto root = verifier::sigstore::TrustedRoot::Parse(*text);
  if (!root.ok()) return root.status().Annotate(path);
  return root;
}

int ReportKeyVerification(const std::string& name, const oci::Digest& digest,
                          const std::vector<verifier::FoundSignature>& found,
                          const verifier::KeyVerification& report, const Flags& flags, const std::string& against) {
  const std::string subject = name + "@" + digest.ToString();
  for (const auto& r : report.rejected) {
    std::cerr << "portcullis verify: " << What(r.bundle) << r.layer_digest.ToString() << " (" << r.source
              << ") rejected: " << r.reason << "\n";
  }
  if (flags.Has("--json")) {
    json verified = json::array(), rejected = json::array();
    for (const auto& v : report.verified) {
      json e = {{"layer_digest", v.layer_digest.ToString()}, {"source", v.source}};
      if (v.keyless) {
        e["certificate"] = {{"subject_alternative_names", v.identity.sans}, {"issuer", v.identity.issuer}};
      }
      if (v.bundle) {
        e["kind"] = "sigstore-bundle";
        e["dsse"] = v.bundle_result.dsse;
        if (!v.bundle_result.predicate_type.empty()) e["predicate_type"] = v.bundle_result.predicate_type;
        if (!v.bundle_result.log_url.empty()) e["log_url"] = v.bundle_result.log_url;
        e["payload"] = BundlePayload(name, digest);
      } else {
        e["kind"] = "simple-signing";
        e["docker_reference"] = v.parsed.docker_reference;
        e["payload"] = json::parse(v.payload, nullptr, false);
      }
      verified.push_back(std::move(e));
    }
    for (const auto& r : report.rejected) {
      rejected.push_back({{"layer_digest", r.layer_digest.ToString()},
                          {"source", r.source},
                          {"kind", r.bundle ? "sigstore-bundle" : "simple-signing"},
                          {"reason", r.reason}});
    }
    std::cout << json{{"image", subject},
                      {"digest", digest.ToString()},
                      {"signature_tag", verifier::SignatureTag(digest)},
                      {"referrers_fallback_tag", verifier::ReferrersFallbackTag(digest)},
                      {"verified", verified},
                      {"rejected", rejected}}
                     .dump(2, ' ', false, json::error_handler_t::replace)
              << "\n";
  } else if (report.ok()) {
    // cosign verify's stdout: the verified payloads as one JSON array.
    std::string out = "[";
    for (size_t i = 0; i < report.verified.size(); ++i) {
      if (i > 0) out += ",";
      const auto& v = report.verified[i];
      out += v.bundle ? BundlePayload(name, digest).dump() : v.payload;
    }
    std::cout << out << "]\n";
  }
  if (!report.ok()) {
    if (found.empty()) {
      std::cerr << "portcullis verify: no signatures found for " << subject << " (no "
                << verifier::SignatureTag(digest) << " tag, no Sigstore bundle or signature referrer)\n";
    } else {
      std::cerr << "portcullis verify: none of the " << found.size() << " signatures of " << subject
                << " verifies with " << against << "\n";
    }
    return 1;
  }
  std::cerr << "\nVerification for " << subject << " --\n"
            << "The following checks were performed on each of these signatures:\n"
            << "  - The cosign claims were validated\n";
  if (report.verified[0].keyless) {
    std::cerr << "  - Existence of the claims in the transparency log was verified offline\n"
              << "  - The code-signing certificate was verified using trusted certificate authority certificates\n"
              << "  - The certificate identity matched " << against << "\n";
  } else {
    std::cerr << "  - The signatures were verified against the specified public key\n";
  }
  return 0;
}

}  // namespace portcullis::cli
