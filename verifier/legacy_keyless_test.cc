// Legacy cosign keyless .sig layers (certificate, chain and Rekor bundle
// annotations) under containers-policy.json "fulcio" + Rekor keys, key-based
// requirements with Rekor keys, and a Portcullis rule's keyless identities
// against a trusted root. Written as attacks: every fixture is made here with
// OpenSSL (verifier/legacy_keyless_test_util.h), one property broken at a time;
// the untouched fixture is accepted first so that each refusal is for its reason.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "oci/base64.h"
#include "verifier/legacy_keyless.h"
#include "verifier/legacy_keyless_test_util.h"
#include "verifier/policy.h"
#include "verifier/policy_test_util.h"

namespace portcullis::verifier {
namespace {

namespace lk = testing::legacy;
using testing::FakeSource;
using testing::JsonQuote;
using testing::TempDir;

const oci::Digest kImage = oci::Digest::Sha256Of("the image manifest");
const std::string kName = "registry.example.com/app/server";

// One world: a Fulcio, a Rekor key, a CT log, and a policy trusting them.
struct World {
  lk::Fulcio fulcio;
  lk::Key rekor = lk::NewKey();
  lk::CtLog ct;

  lk::LayerOptions Options() const {
    lk::LayerOptions o;
    o.digest = kImage;
    return o;
  }
  FoundSignature Layer(const lk::LayerOptions& o) const { return lk::MakeLayer(o, fulcio, rekor.get(), ct).sig; }
  FoundSignature Good() const { return Layer(Options()); }

  std::string FulcioRequirement(const std::string& ca_pem, const std::string& issuer = lk::kIssuer,
                                const std::string& email = lk::kEmail, const std::string& rekor_pem = "") const {
    return R"({"type":"sigstoreSigned","fulcio":{"caData":)" + JsonQuote(oci::Base64Encode(ca_pem)) +
           R"(,"oidcIssuer":)" + JsonQuote(issuer) + R"(,"subjectEmail":)" + JsonQuote(email) +
           R"(},"rekorPublicKeyData":)" +
           JsonQuote(oci::Base64Encode(rekor_pem.empty() ? lk::PubPem(rekor.get()) : rekor_pem)) + "}";
  }
  std::shared_ptr<const Policy> ContainersPolicy(const std::string& requirement) const {
    auto p = Policy::Parse(R"({"default":[{"type":"reject"}],"transports":{"docker":{"registry.example.com":[)" +
                               requirement + "]}}}",
                           "policy.json", "");
    REQUIRE_MESSAGE(p.ok(), p.status().ToString());
    return *p;
  }
};

Decision Eval(const Policy& p, std::vector<FoundSignature> found, const oci::Digest& digest = kImage) {
  FakeSource src(std::move(found));
  auto d = p.Evaluate(kName, "v1", digest, src);
  REQUIRE_MESSAGE(d.ok(), d.status().ToString());
  return *d;
}

void Refused(const Decision& d, const std::string& reason) {
  CHECK_FALSE(d.allowed);
  CHECK_MESSAGE(d.reason.find(reason) != std::string::npos, "reason: " << d.reason << "\nwant: " << reason);
}

TEST_CASE("containers-policy fulcio: a legacy keyless .sig chaining to caData, logged by the Rekor key, is accepted") {
  World w;
  auto p = w.ContainersPolicy(w.FulcioRequirement(w.fulcio.RootPem()));
  Decision d = Eval(*p, {w.Good()});
  CHECK_MESSAGE(d.allowed, d.reason);
  REQUIRE(d.keys_matched.size() == 1);
  CHECK(d.keys_matched[0] == "fulcio " + lk::kEmail + " (" + lk::kIssuer + ")");
  // The legacy issuer extension (.1.1, raw) alone, and both when they agree.
  auto o = w.Options();
  o.leaf.issuer_v2 = "";
  o.leaf.issuer_v1 = lk::kIssuer;
  CHECK(Eval(*p, {w.Layer(o)}).allowed);
  o.leaf.issuer_v2 = lk::kIssuer;
  CHECK(Eval(*p, {w.Layer(o)}).allowed);
  // caData holding the intermediate only is a trust anchor too (as a Go CertPool).
  CHECK(Eval(*w.ContainersPolicy(w.FulcioRequirement(lk::CertPem(w.fulcio.inter.get()))), {w.Good()}).allowed);
  // Explain says what is trusted.
  CHECK(p->Explain().find("sigstoreSigned by fulcio " + lk::kEmail) != std::string::npos);
}

TEST_CASE("containers-policy fulcio attack: another issuer, another email, issuer extensions that disagree") {
  World w;
  auto p = w.ContainersPolicy(w.FulcioRequirement(w.fulcio.RootPem()));
  auto o = w.Options();
  o.leaf.issuer_v2 = "https://evil.example.com";
  Refused(Eval(*p, {w.Layer(o)}), "unexpected Fulcio OIDC issuer \"https://evil.example.com\"");
  o = w.Options();
  o.leaf.emails = {"mallory@example.com"};
  Refused(Eval(*p, {w.Layer(o)}), "required email " + lk::kEmail + " not found in the certificate");
  o = w.Options();
  o.leaf.issuer_v1 = "https://evil.example.com";  // .1.8 still says kIssuer
  Refused(Eval(*p, {w.Layer(o)}), "OIDC issuer extensions disagree");
  o = w.Options();
  o.leaf.issuer_v2 = "";
  Refused(Eval(*p, {w.Layer(o)}), "missing the OIDC issuer extension");
  // The policy's email and issuer are exact: a prefix does not do.
  Refused(Eval(*w.ContainersPolicy(w.FulcioRequirement(w.fulcio.RootPem(), lk::kIssuer, "release@example.co")),
               {w.Good()}),
          "required email release@example.co not found");
}

TEST_CASE("containers-policy fulcio attack: a certificate that does not chain to caData, or is expired at the SET") {
  World w;
  lk::Fulcio other;
  Refused(Eval(*w.ContainersPolicy(w.FulcioRequirement(other.RootPem())), {w.Good()}),
          "does not chain to a trusted Fulcio CA");
  auto p = w.ContainersPolicy(w.FulcioRequirement(w.fulcio.RootPem()));
  // Without the chain annotation the intermediate is unknown.
  auto o = w.Options();
  o.with_chain = false;
  Refused(Eval(*p, {w.Layer(o)}), "does not chain to a trusted Fulcio CA");
  // A leaf valid for an hour, logged two hours later; and one not yet valid.
  o = w.Options();
  o.integrated_time = lk::kSetTime + 7200;
  Refused(Eval(*p, {w.Layer(o)}), "certificate has expired");
  o = w.Options();
  o.integrated_time = lk::kSetTime - 7200;
  Refused(Eval(*p, {w.Layer(o)}), "certificate is not yet valid");
  // A leaf that is not for code signing.
  o = w.Options();
  o.leaf.code_signing = false;
  Refused(Eval(*p, {w.Layer(o)}), "not for code signing");
}

TEST_CASE("containers-policy fulcio attack: a SET by another key, for another payload or signature, or missing") {
  World w;
  auto p = w.ContainersPolicy(w.FulcioRequirement(w.fulcio.RootPem()));
  auto o = w.Options();
  o.set_by_other_key = true;
  Refused(Eval(*p, {w.Layer(o)}), "signed entry timestamp does not verify");
  o = w.Options();
  o.set_for_other_payload = true;
  Refused(Eval(*p, {w.Layer(o)}), "the Rekor entry does not log this signature: the logged artifact hash");
  o = w.Options();
  o.set_for_other_signature = true;
  Refused(Eval(*p, {w.Layer(o)}), "the logged signature is not the bundle's");
  o = w.Options();
  o.with_bundle = false;
  Refused(Eval(*p, {w.Layer(o)}), "missing dev.sigstore.cosign/bundle annotation");
  o = w.Options();
  o.with_certificate = false;
  Refused(Eval(*p, {w.Layer(o)}), "missing dev.sigstore.cosign/certificate annotation");
  // A policy trusting another Rekor key refuses the good layer.
  lk::Key other = lk::NewKey();
  Refused(Eval(*w.ContainersPolicy(
                   w.FulcioRequirement(w.fulcio.RootPem(), lk::kIssuer, lk::kEmail, lk::PubPem(other.get()))),
               {w.Good()}),
          "signed entry timestamp does not verify");
  // A tampered SET annotation (integrated time moved) no longer verifies.
  FoundSignature f = w.Good();
  std::string& set = f.annotations[std::string(kBundleAnnotation)];
  set.replace(set.find(std::to_string(lk::kSetTime)), 10, std::to_string(lk::kSetTime + 1));
  Refused(Eval(*p, {f}), "signed entry timestamp does not verify");
}

TEST_CASE("containers-policy fulcio attack: the payload must be signed by the certificate, for this image") {
  World w;
  auto p = w.ContainersPolicy(w.FulcioRequirement(w.fulcio.RootPem()));
  // A good certificate and SET, but the payload names another digest.
  auto o = w.Options();
  o.digest = oci::Digest::Sha256Of("another image");
  Refused(Eval(*p, {w.Layer(o)}), "signature is for " + o.digest.ToString());
  // The signature annotation swapped for one by another key (the SET logs the other one too).
  lk::Key mallory = lk::NewKey();
  lk::Made m = lk::MakeLayer(w.Options(), w.fulcio, w.rekor.get(), w.ct, mallory.get());
  Refused(Eval(*p, {m.sig}), "the signature does not verify with the certificate's key");
  // The signed docker-reference must satisfy signedIdentity (matchRepoDigestOrExact by default).
  o = w.Options();
  o.ref = "registry.example.com/other/app:v1";
  CHECK_FALSE(Eval(*p, {w.Layer(o)}).allowed);
  // A Sigstore bundle layer is not read by a fulcio requirement.
  FoundSignature b = w.Good();
  b.bundle = true;
  Refused(Eval(*p, {b}), "no signature by a trusted signer");
  // One good layer among bad ones is enough.
  auto bad = w.Options();
  bad.set_by_other_key = true;
  CHECK(Eval(*p, {w.Layer(bad), w.Good()}).allowed);
}

TEST_CASE("containers-policy: keyPath with rekorPublicKeyPath(s) needs a SET logging that key") {
  World w;
  TempDir dir;
  lk::Key signer = lk::NewKey();
  lk::Key other_rekor = lk::NewKey();
  dir.Write("cosign.pub", lk::PubPem(signer.get()));
  dir.Write("rekor.pub", lk::PubPem(w.rekor.get()));
  dir.Write("rekor2.pub", lk::PubPem(other_rekor.get()));
  auto policy = [&](const std::string& rekor) {
    auto p = Policy::Parse(R"({"default":[{"type":"sigstoreSigned","keyPath":"cosign.pub")" +
                               (rekor.empty() ? "" : "," + rekor) + "}]}",
                           "policy.json", dir.str());
    REQUIRE_MESSAGE(p.ok(), p.status().ToString());
    return *p;
  };
  auto o = w.Options();
  o.with_certificate = false;
  o.with_chain = false;
  o.log_the_key = true;
  o.logged_key_pem = lk::PubPem(signer.get());
  auto layer = [&](const lk::LayerOptions& opt) {
    return lk::MakeLayer(opt, w.fulcio, w.rekor.get(), w.ct, signer.get()).sig;
  };
  CHECK(Eval(*policy(R"("rekorPublicKeyPath":"rekor.pub")"), {layer(o)}).allowed);
  CHECK(Eval(*policy(R"("rekorPublicKeyPaths":["rekor2.pub","rekor.pub"])"), {layer(o)}).allowed);
  // Without Rekor keys the SET is not needed.
  auto no_set = o;
  no_set.with_bundle = false;
  CHECK(Eval(*policy(""), {layer(no_set)}).allowed);
  // With them: missing, by another Rekor key, logging another key.
  Refused(Eval(*policy(R"("rekorPublicKeyPath":"rekor.pub")"), {layer(no_set)}),
          "missing dev.sigstore.cosign/bundle annotation");
  Refused(Eval(*policy(R"("rekorPublicKeyPath":"rekor2.pub")"), {layer(o)}), "signed entry timestamp does not verify");
  auto wrong_key = o;
  wrong_key.logged_key_pem = lk::PubPem(other_rekor.get());
  Refused(Eval(*policy(R"("rekorPublicKeyPath":"rekor.pub")"), {layer(wrong_key)}),
          "the logged certificate/key is not the bundle's");
  // A Rekor key that is not ECDSA is refused at load.
  auto ed = keys::PrivateKey::Generate(keys::KeyType::kEd25519);
  REQUIRE(ed.ok());
  dir.Write("ed.pub", *ed->PublicKeyPem());
  auto bad = Policy::Parse(R"({"default":[{"type":"sigstoreSigned","keyPath":"cosign.pub","rekorPublicKeyPath":"ed.pub"}]})",
                           "policy.json", dir.str());
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("default[0].rekorPublicKeyPath: Rekor public key is not using ECDSA") !=
        std::string::npos);
}

TEST_CASE("containers-policy fulcio: loading caPath, rekorPublicKeyPaths; errors name the field") {
  World w;
  TempDir dir;
  dir.Write("fulcio.pem", w.fulcio.RootPem());
  dir.Write("rekor.pub", lk::PubPem(w.rekor.get()));
  const std::string good = R"({"default":[{"type":"sigstoreSigned","fulcio":{"caPath":"fulcio.pem","oidcIssuer":)" +
                           JsonQuote(lk::kIssuer) + R"(,"subjectEmail":)" + JsonQuote(lk::kEmail) +
                           R"(},"rekorPublicKeyPaths":["rekor.pub"]}]})";
  auto p = Policy::Parse(good, "policy.json", dir.str());
  REQUIRE_MESSAGE(p.ok(), p.status().ToString());
  CHECK(Eval(**p, {w.Good()}).allowed);
  // The version changes with the CA file.
  lk::Fulcio other;
  dir.Write("fulcio.pem", other.RootPem());
  auto p2 = Policy::Parse(good, "policy.json", dir.str());
  REQUIRE(p2.ok());
  CHECK((*p2)->version() != (*p)->version());
  CHECK_FALSE(Eval(**p2, {w.Good()}).allowed);
  auto err = [&](const std::string& fulcio) {
    auto r = Policy::Parse(R"({"default":[{"type":"sigstoreSigned","fulcio":)" + fulcio +
                               R"(,"rekorPublicKeyPath":"rekor.pub"}]})",
                           "policy.json", dir.str());
    REQUIRE_FALSE(r.ok());
    return r.status().message();
  };
  CHECK(err(R"({"caPath":"fulcio.pem","oidcIssuer":"i"})").find("default[0].fulcio: subjectEmail not specified") !=
        std::string::npos);
  CHECK(err(R"({"caPath":"fulcio.pem","subjectEmail":"e"})").find("default[0].fulcio: oidcIssuer not specified") !=
        std::string::npos);
  CHECK(err(R"({"oidcIssuer":"i","subjectEmail":"e"})").find("at least one of caPath and caData") != std::string::npos);
  CHECK(err(R"({"caData":"not base64!","oidcIssuer":"i","subjectEmail":"e"})").find("default[0].fulcio.caData") !=
        std::string::npos);
  CHECK(err(R"({"caPath":"missing.pem","oidcIssuer":"i","subjectEmail":"e"})").find("default[0].fulcio.caPath") !=
        std::string::npos);
  CHECK(err(R"("just a string")").find("default[0].fulcio: must be an object") != std::string::npos);
}

// A Portcullis policy whose rule requires `identities` (JSON list), trusting
// `root_json` as its trusted root.
std::shared_ptr<const Policy> IdentityPolicy(const TempDir& dir, const std::string& root_json,
                                             const std::string& identities, const std::string& extra = "") {
  dir.Write("trusted_root.json", root_json);
  auto p = Policy::Parse(R"({"trusted_root":"trusted_root.json","rules":[{"match":"registry.example.com/**",)"
                         R"("require":{"identities":[)" +
                             identities + "]" + extra + "}}]}",
                         "policy.json", dir.str());
  REQUIRE_MESSAGE(p.ok(), p.status().ToString());
  return *p;
}

std::string Identity(const std::string& subject = lk::kEmail, const std::string& issuer = lk::kIssuer) {
  return R"({"subject":)" + JsonQuote(subject) + R"(,"issuer":)" + JsonQuote(issuer) + "}";
}

TEST_CASE("portcullis identities: a legacy keyless .sig verified against the trusted root is accepted") {
  World w;
  TempDir dir;
  auto p = IdentityPolicy(dir, lk::TrustedRootJson(w.fulcio, w.rekor.get(), w.ct), Identity());
  Decision d = Eval(*p, {w.Good()});
  CHECK_MESSAGE(d.allowed, d.reason);
  CHECK(d.keys_matched == std::vector<std::string>{"identity:" + lk::kEmail});
  // A regular expression over the email, and the legacy issuer extension.
  auto re = IdentityPolicy(dir, lk::TrustedRootJson(w.fulcio, w.rekor.get(), w.ct),
                           R"({"subject_regexp":".*@example\\.com","issuer":)" + JsonQuote(lk::kIssuer) + "}");
  auto o = w.Options();
  o.leaf.issuer_v2 = "";
  o.leaf.issuer_v1 = lk::kIssuer;
  CHECK(Eval(*re, {w.Layer(o)}).allowed);
}

TEST_CASE("portcullis identities attack: legacy keyless .sig with another identity, issuer, log, CA, or time") {
  World w;
  TempDir dir;
  const std::string root = lk::TrustedRootJson(w.fulcio, w.rekor.get(), w.ct);
  auto p = IdentityPolicy(dir, root, Identity());
  auto o = w.Options();
  o.leaf.emails = {"mallory@example.com"};
  Refused(Eval(*p, {w.Layer(o)}), "certificate identity \"mallory@example.com\" does not match");
  o = w.Options();
  o.leaf.issuer_v2 = "https://evil.example.com";
  Refused(Eval(*p, {w.Layer(o)}), "certificate OIDC issuer \"https://evil.example.com\" does not match");
  // A regular expression must match the whole SAN.
  auto partial = IdentityPolicy(dir, root, R"({"subject_regexp":"release@example","issuer":)" +
                                               JsonQuote(lk::kIssuer) + "}");
  Refused(Eval(*partial, {w.Good()}), "does not match /release@example/");
  // Logged by a log that is not in the trusted root, or SET signed by another key.
  lk::Key rogue_log = lk::NewKey();
  Refused(Eval(*p, {lk::MakeLayer(w.Options(), w.fulcio, rogue_log.get(), w.ct).sig}),
          "from a log that is not in the trusted root");
  o = w.Options();
  o.set_by_other_key = true;
  Refused(Eval(*p, {w.Layer(o)}), "signed entry timestamp does not verify");
  o = w.Options();
  o.set_for_other_payload = true;
  Refused(Eval(*p, {w.Layer(o)}), "the logged artifact hash is not the artifact's");
  // Expired at the integrated time.
  o = w.Options();
  o.integrated_time = lk::kSetTime + 7200;
  Refused(Eval(*p, {w.Layer(o)}), "certificate has expired");
  // A certificate from another CA, whose chain annotation names that CA: the
  // annotation is not trusted, only the trusted root is.
  lk::Fulcio rogue;
  lk::Made m = lk::MakeLayer(w.Options(), rogue, w.rekor.get(), w.ct);
  Refused(Eval(*p, {m.sig}), "does not chain to a trusted Fulcio CA");
  // No SCT from a trusted CT log.
  o = w.Options();
  o.sct = false;
  Refused(Eval(*p, {w.Layer(o)}), "certificate has no embedded SCT");
  lk::CtLog rogue_ct;
  Refused(Eval(*p, {lk::MakeLayer(w.Options(), w.fulcio, w.rekor.get(), rogue_ct).sig}), "embedded SCT");
  // Without the Rekor bundle there is no signing time.
  o = w.Options();
  o.with_bundle = false;
  Refused(Eval(*p, {w.Layer(o)}), "missing dev.sigstore.cosign/bundle annotation");
  // The payload must name the served digest.
  o = w.Options();
  o.digest = oci::Digest::Sha256Of("another image");
  Refused(Eval(*p, {w.Layer(o)}), "signature is for " + o.digest.ToString());
  // The default public-good root does not trust the test Fulcio.
  auto pg = Policy::Parse(R"({"rules":[{"match":"registry.example.com/**","require":{"identities":[)" + Identity() +
                              "]}}]}",
                          "policy.json", "");
  REQUIRE(pg.ok());
  CHECK_FALSE(Eval(**pg, {w.Good()}).allowed);
}

TEST_CASE("portcullis identities: a legacy keyless .sig counts once toward a k-of-n with a key") {
  World w;
  TempDir dir;
  lk::Key release = lk::NewKey();
  dir.Write("release.pub", lk::PubPem(release.get()));
  dir.Write("trusted_root.json", lk::TrustedRootJson(w.fulcio, w.rekor.get(), w.ct));
  auto p = Policy::Parse(R"({"trusted_root":"trusted_root.json","keys":{"release":{"path":"release.pub"}},"rules":[{"match":)"
                         R"("registry.example.com/**","require":{"keys":["release"],"identities":[)" +
                             Identity() + R"(],"threshold":2}}]})",
                         "policy.json", dir.str());
  REQUIRE_MESSAGE(p.ok(), p.status().ToString());
  // The keyless signature alone is 1 of 2.
  Decision one = Eval(**p, {w.Good()});
  CHECK_FALSE(one.allowed);
  CHECK(one.reason.find("2 of 2 keys/identities required, 1 found (identity:" + lk::kEmail + ")") !=
        std::string::npos);
  // With a key-based .sig by the release key, 2 of 2.
  auto o = w.Options();
  o.with_certificate = false;
  o.with_chain = false;
  o.with_bundle = false;
  FoundSignature keyed = lk::MakeLayer(o, w.fulcio, w.rekor.get(), w.ct, release.get()).sig;
  Decision two = Eval(**p, {w.Good(), keyed});
  CHECK_MESSAGE(two.allowed, two.reason);
  // The same keyless signature twice still counts once.
  CHECK_FALSE(Eval(**p, {w.Good(), w.Good()}).allowed);
}

TEST_CASE("portcullis identities attack: a legacy keyless .sig must also name a docker-reference the rule accepts") {
  World w;
  TempDir dir;
  dir.Write("trusted_root.json", lk::TrustedRootJson(w.fulcio, w.rekor.get(), w.ct));
  auto p = Policy::Parse(R"({"trusted_root":"trusted_root.json","rules":[{"match":"registry.example.com/**",)"
                         R"("require":{"identities":[)" +
                             Identity() + R"(]},"identity":"registry.example.com/app/*"}]})",
                         "policy.json", dir.str());
  REQUIRE_MESSAGE(p.ok(), p.status().ToString());
  CHECK(Eval(**p, {w.Good()}).allowed);  // kRef is registry.example.com/app/server:v1
  auto o = w.Options();
  o.ref = "registry.example.com/elsewhere/server:v1";
  Refused(Eval(**p, {w.Layer(o)}), "identity registry.example.com/elsewhere/server does not match");
}

}  // namespace
}  // namespace portcullis::verifier
