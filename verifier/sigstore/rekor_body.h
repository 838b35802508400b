// Consistency of a Rekor entry's canonicalized body with the bundle it is meant
// to log: same signature, same certificate or key, same artifact (or DSSE
// payload). Supported kinds: hashedrekord 0.0.1 and 0.0.2 (including
// "hashedrekord over DSSE": the digest of the DSSE PAE), dsse 0.0.1 and 0.0.2,
// intoto 0.0.2.
//
// Contract: OK only when the body matches every expectation; DENIED naming the
// field that differs; UNSUPPORTED "unsupported: ..." for another kind/version.
// Never throws on a malformed body.
#pragma once

#include <string>

#include "oci/status.h"
#include "verifier/sigstore/bundle.h"

namespace portcullis::verifier::sigstore {

struct EntryExpectation {
  std::string signature;     // raw signature bytes (message or DSSE signature)
  std::string verifier_der;  // the leaf certificate DER, or the key's SPKI DER
  bool verifier_is_cert = true;
  bool is_dsse = false;
  std::string artifact_sha256;  // raw 32 bytes (message signatures)
  DsseEnvelope dsse;            // DSSE bundles
};

// DSSE pre-authentication encoding: "DSSEv1 <len> <type> <len> <payload>".
std::string DssePae(const std::string& payload_type, const std::string& payload);

Status CheckEntryBody(const TlogEntry& entry, const EntryExpectation& want);

}  // namespace portcullis::verifier::sigstore
