// Output of `portcullis verify IMAGE --key PUB` and of its keyless form
// (--certificate-identity ...) (cli-internal): the verified
// payloads on stdout as a JSON array (cosign verify's shape; a verified Sigstore
// bundle appears as the payload cosign v3 prints for it), or a JSON report with
// --json; one line per rejected signature and the verdict on stderr.
#pragma once

#include <string>
#include <vector>

#include "cli/flags.h"
#include "oci/digest.h"
#include "oci/status.h"
#include "verifier/discovery.h"
#include "verifier/key_verify.h"
#include "verifier/sigstore/trusted_root.h"

namespace portcullis::cli {

// Prints the outcome; returns the exit code (0 at least one verified, 1 none).
// `against` names what the signatures were checked with (the --key FILE, or a
// keyless identity's Describe()), for the refusal message.
int ReportKeyVerification(const std::string& name, const oci::Digest& digest,
                          const std::vector<verifier::FoundSignature>& found,
                          const verifier::KeyVerification& report, const Flags& flags, const std::string& against);

// The trusted_root.json at `path`, or the built-in Sigstore public-good root when
// `path` is empty. Errors name the file.
StatusOr<verifier::sigstore::TrustedRoot> LoadTrustedRoot(const std::string& path);

}  // namespace portcullis::cli
