// The trust policy: which images may be served, decided from their cosign
// signatures. Two file formats, told apart by content (see policy.md next to
// this file for the full description):
//
//  * Portcullis' own JSON ({"keys": ..., "rules": [...], "default": ...}): rules
//    match canonical image names with globs and digest pins (verifier/glob.h); the
//    most specific rule wins; a rule accepts, rejects, or requires k of n listed
//    keys (distinct keys), optionally checks the signed identity, and is enforced
//    or only warned about.
//  * containers-policy.json as containers/image defines it ({"default": [...],
//    "transports": {"docker": {scope: [...]}}}): the most specific docker scope
//    wins; every requirement of its list must hold; insecureAcceptAnything,
//    reject and sigstoreSigned (keyPath/keyPaths/keyData/keyDatas with
//    signedIdentity) are supported; anything Portcullis cannot check (signedBy,
//    fulcio, pki, rekor, unknown types) is refused when the file is loaded.
//
// Images are named canonically: "<upstream NAME>/<repository>", e.g.
// "docker.io/library/alpine" or "127.0.0.1:5000/lab/small" (for the CLI the
// upstream NAME is the registry host as written; in the proxy, the upstream's
// configured name).
//
// A loaded Policy is immutable and safe to share between threads
// (std::shared_ptr<const Policy>); Evaluate may run concurrently.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "oci/digest.h"
#include "oci/status.h"
#include "verifier/discovery.h"

namespace portcullis::verifier {

// The outcome of a policy evaluation for one image digest.
struct Decision {
  // Serve the image? True for accept and for warn.
  bool allowed = false;
  // The rule failed but is in warn mode: served, and the failure is to be logged.
  bool warn_only = false;
  // Which rule decided: a Portcullis rule's "match" pattern or "default"; for
  // containers-policy.json `transports.docker["<scope>"]` or `default`.
  std::string rule;
  // Why, precisely ("rejected by rule docker.io/library/*", "signature is for
  // sha256:…, not sha256:…", "2 of 3 keys required, 1 found (release)", ...).
  std::string reason;
  // Names of the trusted keys with a valid signature (distinct, policy order).
  std::vector<std::string> keys_matched;
  // One line per signature examined and what became of it (for logs, --json).
  std::vector<std::string> details;
  // How many signatures were found (0 when the rule needed no lookup).
  size_t signatures_found = 0;

  // "accept", "reject" or "warn".
  std::string verdict() const;
  // Accepted because signatures by trusted keys verified (not by an accept rule,
  // insecureAcceptAnything or warn mode). Only such a verdict on an index covers
  // the index's children (proxy gate).
  bool verified_by_signature() const { return allowed && !warn_only && !keys_matched.empty(); }
};

class Policy {
 public:
  virtual ~Policy();
  Policy(const Policy&) = delete;
  Policy& operator=(const Policy&) = delete;

  // Reads and parses a policy file; relative key paths resolve against the
  // file's folder. Errors (INVALID_ARGUMENT, NOT_FOUND, IO_ERROR) begin with the
  // path and name the offending field: "p.json: rules[2].require.threshold: 3 is
  // more than the 2 listed keys".
  static StatusOr<std::shared_ptr<const Policy>> LoadFile(const std::string& path);
  // Parses `text`. `origin` prefixes error messages (a path or "<inline>");
  // relative key paths resolve against `base_dir` ("" = the current directory).
  static StatusOr<std::shared_ptr<const Policy>> Parse(const std::string& text, const std::string& origin,
                                                       const std::string& base_dir);

  // "sha256:<hex>" over the file bytes and the bytes of every key file it names:
  // equal versions mean equal decisions (a verdict cache key).
  const std::string& version() const { return version_; }
  // The origin given to Parse / the path given to LoadFile.
  const std::string& origin() const { return origin_; }
  // "portcullis" or "containers-policy".
  virtual std::string format() const = 0;

  // The rule / scope that decides for this image (as Decision::rule names it).
  // `name` is canonical, `tag` may be empty.
  virtual std::string MatchedRule(const std::string& name, const std::string& tag, const oci::Digest& digest) const = 0;
  // False when that rule decides without signatures (accept, reject,
  // insecureAcceptAnything, a default without keys): the proxy may then skip the
  // signature lookup. Evaluate never calls the source in that case either.
  virtual bool NeedsSignatures(const std::string& name, const std::string& tag, const oci::Digest& digest) const = 0;

  // True when a decision may depend on the tag the image is asked by (scopes
  // and identities of containers-policy.json do; Portcullis rules match names
  // and digests only): the proxy then keys cached verdicts by tag too.
  virtual bool DecisionDependsOnTag() const = 0;
  // True when no image can ever be refused (everything accepted or only
  // warned about): the proxy warns that its gate stops nothing.
  virtual bool AcceptsEverything() const = 0;

  // Decides whether the image `name` (canonical "<upstream>/<repo>"), referenced
  // by `tag` (may be empty: by digest) with manifest `digest`, may be served.
  // `sigs` is asked at most once, and only when the rule needs signatures. A
  // refusal is a Decision with allowed=false, never an error; errors are real
  // failures only (the signature source failed: upstream unreachable etc.;
  // INVALID_ARGUMENT for an empty name).
  virtual StatusOr<Decision> Evaluate(const std::string& name, const std::string& tag, const oci::Digest& digest,
                                      SignatureSource& sigs) const = 0;

  // A human description of the keys and rules (in the order they are tried) or
  // scopes, with warnings about parts that can never apply; for `policy check`.
  virtual std::string Explain() const = 0;

 protected:
  Policy(std::string origin, std::string version) : origin_(std::move(origin)), version_(std::move(version)) {}

 private:
  std::string origin_;
  std::string version_;
};

}  // namespace portcullis::verifier
