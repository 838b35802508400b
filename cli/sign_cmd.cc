// `portcullis sign`, `portcullis verify` and `portcullis push`: cosign-compatible
// image signatures in the `.sig` tag, and OCI-layout uploads. The work is done by
// signer/ and verifier/; this file parses flags, prints and picks exit codes.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "cli/commands.h"
#include "cli/flags.h"
#include "cli/verify_mode.h"
#include "cli/verify_report.h"
#include "keys/encrypted_key.h"
#include "keys/files.h"
#include "keys/key.h"
#include "keys/passphrase.h"
#include "keys/pem.h"
#include "oci/reference.h"
#include "signer/layout.h"
#include "signer/payload.h"
#include "signer/pusher.h"
#include "signer/bundle_sign.h"
#include "signer/sign.h"
#include "verifier/discovery.h"
#include "verifier/image_check.h"
#include "verifier/key_verify.h"
#include "verifier/policy.h"
#include "oci/registry_read.h"
#include "oci/remote.h"
#include "verifier/signatures.h"
#include "verifier/sigstore/crypto.h"

namespace portcullis::cli {

namespace {

using nlohmann::json;

constexpr int kExitOk = 0;
constexpr int kExitRefused = 1;
constexpr int kExitError = 2;

constexpr const char* kRegistryFlagsHelp = R"(Registry access:
  --allow-http                   talk plain http to the registry (default: https only)
  --registry-username USER       user name for the registry (with --registry-password-file)
  --registry-password-file FILE  the password: the first line of FILE
  Without them, credentials come from the docker config "auths" entry for the
  registry ($DOCKER_CONFIG/config.json, else ~/.docker/config.json), if any.
)";

constexpr const char* kSignUsage = R"(Usage: portcullis sign IMAGE --key KEY [flags]

Signs the manifest IMAGE names (a tag is resolved to its digest first) as
"cosign sign --key" does: a simple-signing payload whose signature is stored in
the manifest tagged sha256-<hex>.sig in the same repository. A new signature is
appended to the ones already there; signing again with the same key and the same
annotations changes nothing. Prints the signed digest and the signature manifest
digest.

With --bundle, signs in the Sigstore bundle format instead, as cosign v3 does
with a key and no transparency-log upload: a v0.3 bundle (message signature over
the manifest, public-key hint, no log entry) stored as an OCI referrer of the
image (artifactType application/vnd.dev.sigstore.bundle.v0.3+json); on a
registry without the referrers API the referrer is also listed in the index
tagged sha256-<hex>. Needs an ECDSA P-256 or RSA key. portcullis verify --key,
verify --policy and the proxy gate find and verify it.

Flags:
  --key KEY                 encrypted private key (cosign format; see portcullis key)
  -a, --annotation KEY=VAL  add KEY=VAL to the payload's "optional" map (repeatable)
  --recursive               for an index, also sign every manifest it names
  --bundle                  write a Sigstore bundle referrer instead of a .sig layer
  --json                    print the result as JSON
  --passphrase-file FILE    the key's passphrase (when $PORTCULLIS_PASSWORD and
                            $COSIGN_PASSWORD are unset)
)";

constexpr const char* kVerifyUsage = R"(Usage: portcullis verify IMAGE --key PUB [flags]
       portcullis verify IMAGE (--certificate-identity ID | --certificate-identity-regexp RE)
                               (--certificate-oidc-issuer URL | --certificate-oidc-issuer-regexp RE) [flags]
       portcullis verify IMAGE --policy FILE [flags]

Verifies the cosign signatures of IMAGE with the public key PUB, wherever cosign
stores them: Sigstore bundles (cosign v3, portcullis sign --bundle) and signature
manifests found through the referrers API (or, on a registry without it, the
index tagged sha256-<hex>), and the legacy sha256-<hex>.sig tag. A simple-signing
payload must hash to its layer digest, its signature verify, and be exactly
cosign's JSON naming the image's digest. A bundle must be key-based and verify
with PUB, and its signed artifact must be the image's digest (a bundle with a log
entry or timestamp is verified against the trusted root too). Prints the verified
payloads as a JSON array (as cosign verify does); reasons for rejected signatures
go to stderr. Exit 0 when at least one signature verifies, 1 when none does, 2 on
usage or I/O errors.

With --certificate-identity[-regexp] and --certificate-oidc-issuer[-regexp], the
signatures must be keyless (a Fulcio certificate), checked offline against the
trusted root, as cosign verify does: cosign v3 bundles (the signing time from the
Rekor entry or an RFC 3161 timestamp, the certificate chain at that time, its
SCT, the identity, the log entry with its inclusion proof and checkpoint, the
signature over the image digest) and legacy keyless .sig layers (the Rekor SET,
the chain, the SCT, the identity, the payload). Same output and exit codes.

With --policy, the trust policy decides instead (see portcullis policy --help): its
matching rule, k-of-n keys, identity checks; signatures are looked for in the
referrers API (or the sha256-<hex> fallback tag) and the .sig tag. The verdict is
printed as JSON; exit 0 accepted (or warn), 1 refused, 2 error.

Flags:
  --key PUB      public key (PEM "PUBLIC KEY")
  --certificate-identity ID              the certificate's SAN (URI or email), exactly
  --certificate-identity-regexp RE       or an ECMAScript regular expression matching all of it
  --certificate-oidc-issuer URL          the OIDC issuer in the certificate, exactly
  --certificate-oidc-issuer-regexp RE    or a regular expression matching all of it
  --trusted-root FILE  the Sigstore trusted_root.json (Fulcio CAs, Rekor and CT logs,
                 TSAs) for keyless signatures and bundles with a log entry
                 (default: the Sigstore public-good root built in)
  --policy FILE  a trust policy (Portcullis JSON or containers-policy.json) instead
  --json         print a JSON report (digest, verified and rejected signatures)
)";

constexpr const char* kPushUsage = R"(Usage: portcullis push OCI_LAYOUT[:REF] IMAGE [flags]

Uploads an image from the OCI image layout directory OCI_LAYOUT to IMAGE. REF picks
the manifest by its org.opencontainers.image.ref.name annotation; without it the
layout must hold exactly one. Blobs the registry already has are skipped; manifests
are uploaded byte for byte, so digests equal the layout's (and skopeo copy's).
With --sign, the pushed digest is then signed as "portcullis sign" does.

Flags:
  --sign                    sign the pushed image (needs --key)
  --key KEY                 encrypted private key for --sign
  -a, --annotation KEY=VAL  payload annotation for --sign (repeatable)
  --recursive               with --sign and an index, sign every manifest it names too
  --json                    print the result as JSON
  --passphrase-file FILE    the key's passphrase (when the environment has none)
)";

FlagSpec WithRegistryFlags(FlagSpec spec) {
  spec.values.insert({"--registry-username", "--registry-password-file"});
  spec.bools.insert("--allow-http");
  return spec;
}

int Fail(std::string_view cmd, const Status& st) {
  std::cerr << "portcullis " << cmd << ": " << st.message() << "\n";
  return kExitError;
}

int Fail(std::string_view cmd, const std::string& message) { return Fail(cmd, Status::InvalidArgument(message)); }

// A registry error, with a hint when https was tried against what may be a plain-http registry.
int FailRemote(std::string_view cmd, const Status& st, const Flags& flags) {
  if (st.Is(Code::kUpstreamUnavailable) && !flags.Has("--allow-http") &&
      st.message().find("https://") != std::string::npos) {
    return Fail(cmd, st.message() + " (a plain-http registry needs --allow-http)");
  }
  return Fail(cmd, st);
}

StatusOr<oci::RemoteOptions> RemoteOptionsFrom(const Flags& flags) {
  oci::RemoteOptions opts;
  opts.allow_http = flags.Has("--allow-http");
  const bool user = flags.Has("--registry-username"), pass = flags.Has("--registry-password-file");
  if (user != pass) {
    return Status::InvalidArgument("--registry-username and --registry-password-file go together");
  }
  if (user) {
    PC_ASSIGN_OR_RETURN(keys::SecretBytes pw, keys::ReadPassphraseFile(flags.Value("--registry-password-file")));
    opts.credentials = oci::Credentials{flags.Value("--registry-username"), std::string(pw.view())};
  }
  return opts;
}

// Reads and decrypts a private key file; the passphrase is asked for only once
// the file is known to be an encrypted cosign key.
StatusOr<keys::PrivateKey> LoadPrivateKey(const std::string& path, const Flags& flags) {
  PC_ASSIGN_OR_RETURN(std::string text, keys::ReadSmallFile(path));
  std::vector<std::string> types = keys::PemTypes(text);
  if (types.empty()) return Status::InvalidArgument(path + ": not a PEM file");
  if (types[0] != keys::kSigstorePrivateKeyPemType && types[0] != keys::kCosignPrivateKeyPemType) {
    return Status::InvalidArgument(path + ": unknown PEM type \"" + types[0] + "\" (want \"" +
                                   std::string(keys::kSigstorePrivateKeyPemType) + "\")");
  }
  keys::PassphraseRequest req;
  req.passphrase_file = flags.Value("--passphrase-file");
  PC_ASSIGN_OR_RETURN(keys::SecretBytes pass, keys::GetPassphrase(req));
  auto key = keys::PrivateKey::FromEncryptedPem(text, pass.view());
  if (!key.ok()) return key.status().Annotate(path);
  return key;
}

// The manifest digest an image reference names, checked to exist.
StatusOr<oci::Digest> Resolve(oci::RegistryClient& client, const oci::Reference& ref, const std::string& scope) {
  PC_ASSIGN_OR_RETURN(oci::Digest d, oci::ResolveDigest(client, ref.repository, ref.Ref(), scope));
  if (ref.digest && d != *ref.digest) {
    return Status::UpstreamInvalid("the registry answered " + d.ToString() + " for " + ref.ToString());
  }
  return d;
}

json SignedJson(const std::string& name, const signer::SignedImage& s) {
  return json{{"image", name + "@" + s.image_digest.ToString()},
              {"digest", s.image_digest.ToString()},
              {"signature_tag", s.signature_tag},
              {"signature_manifest_digest", s.signature_manifest_digest.ToString()},
              {"payload_digest", s.payload_digest.ToString()},
              {"layer_added", s.layer_added},
              {"signature_layers", s.signature_layers}};
}

void PrintSigned(const std::string& name, const signer::SignedImage& s) {
  std::cout << "Signed " << name << "@" << s.image_digest.ToString() << "\n"
            << "  signature " << name << ":" << s.signature_tag << "@" << s.signature_manifest_digest.ToString()
            << (s.layer_added ? " (signature added; " : " (already signed with this key; ") << s.signature_layers
            << (s.signature_layers == 1 ? " signature)\n" : " signatures)\n");
}

StatusOr<signer::SignRequest> SignRequestFrom(const Flags& flags, std::string_view image) {
  signer::SignRequest req;
  PC_ASSIGN_OR_RETURN(req.docker_reference, signer::DockerReference(image));
  PC_ASSIGN_OR_RETURN(req.annotations, signer::ParseAnnotations(flags.List("-a")));
  req.recursive = flags.Has("--recursive");
  return req;
}

// Progress lines for push, on a terminal only.
class Progress {
 public:
  explicit Progress(bool enabled) : enabled_(enabled) {}
  void operator()(const signer::PushEvent& e) {
    if (!enabled_) return;
    std::string shortd = e.digest.hex().substr(0, 12);
    auto mib = [](int64_t b) {
      char buf[32];
      if (b < (1 << 20)) {
        std::snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(b) / 1024);
      } else {
        std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(b) / (1 << 20));
      }
      return std::string(buf);
    };
    switch (e.kind) {
      case signer::PushEvent::kBlobSkipped:
        std::cerr << "blob " << shortd << ": exists, skipped\n";
        break;
      case signer::PushEvent::kBlobStart:
        last_pct_ = -1;
        break;
      case signer::PushEvent::kBlobProgress: {
        int pct = e.size > 0 ? static_cast<int>(e.sent * 100 / e.size) : 100;
        if (pct / 5 != last_pct_ / 5) {
          std::cerr << "\rblob " << shortd << ": " << mib(e.sent) << " / " << mib(e.size) << " (" << pct << "%)"
                    << std::flush;
          last_pct_ = pct;
        }
        break;
      }
      case signer::PushEvent::kBlobDone:
        std::cerr << "\rblob " << shortd << ": uploaded " << mib(e.size) << "            \n";
        break;
      case signer::PushEvent::kManifestDone:
        std::cerr << "manifest " << shortd << ": pushed\n";
        break;
    }
  }

 private:
  bool enabled_;
  int last_pct_ = -1;
};

// `sign --bundle`: the Sigstore bundle referrer (signer/bundle_sign.h).
int SignBundle(signer::Pusher& pusher, const std::string& name, const oci::Digest& digest, const keys::PrivateKey& key,
               const Flags& flags) {
  auto s = signer::SignDigestBundle(pusher, digest, key, verifier::sigstore::FormatTime(std::time(nullptr)));
  if (!s.ok()) return FailRemote("sign", s.status(), flags);
  if (flags.Has("--json")) {
    json out = {{"image", name + "@" + digest.ToString()},
                {"digest", digest.ToString()},
                {"bundle_digest", s->bundle_digest.ToString()},
                {"referrer_digest", s->referrer_digest.ToString()},
                {"referrers_api", s->referrers_api}};
    if (!s->referrers_api) {
      out["fallback_tag"] = s->fallback_tag;
      out["fallback_entries"] = s->fallback_entries;
    }
    std::cout << json{{"signed", json::array({out})}}.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
  } else {
    std::cout << "Signed " << name << "@" << digest.ToString() << "\n  bundle referrer " << name << "@"
              << s->referrer_digest.ToString()
              << (s->referrers_api ? " (listed by the registry's referrers API)\n"
                                   : " (listed in the fallback index " + name + ":" + s->fallback_tag + ", " +
                                         std::to_string(s->fallback_entries) + " referrer(s))\n");
  }
  return kExitOk;
}

}  // namespace

int RunSign(const std::vector<std::string>& args) {
  FlagSpec spec = WithRegistryFlags(
      {{"--key", "--passphrase-file"}, {"--recursive", "--json", "--bundle"}, {{"-a", "-a"}, {"--annotation", "-a"}}});
  auto flags = ParseFlags(args, spec);
  if (!flags.ok()) return Fail("sign", flags.status().message() + " (see portcullis sign --help)");
  if (flags->help) {
    std::cout << kSignUsage << "\n" << kRegistryFlagsHelp;
    return kExitOk;
  }
  if (flags->positional.size() != 1) return Fail("sign", "want exactly one IMAGE (see portcullis sign --help)");
  if (!flags->Has("--key")) return Fail("sign", "missing --key KEY");
  if (flags->Has("--bundle") && flags->Has("--recursive")) return Fail("sign", "--bundle and --recursive exclude each other");
  if (flags->Has("--bundle") && !flags->List("-a").empty()) {
    return Fail("sign", "--annotation goes into a simple-signing payload, which --bundle does not write");
  }
  const std::string image = flags->positional[0];
  auto ref = oci::ParseReference(image);
  if (!ref.ok()) return Fail("sign", ref.status().Annotate(image));
  auto request = SignRequestFrom(*flags, image);
  if (!request.ok()) return Fail("sign", request.status());
  auto opts = RemoteOptionsFrom(*flags);
  if (!opts.ok()) return Fail("sign", opts.status());
  auto key = LoadPrivateKey(flags->Value("--key"), *flags);
  if (!key.ok()) return Fail("sign", key.status());
  auto remote = oci::ConnectRegistry(ref->registry, *opts);
  if (!remote.ok()) return Fail("sign", remote.status());
  signer::Pusher pusher(*remote, ref->repository);
  auto digest = Resolve(pusher.client(), *ref, pusher.scope());
  if (!digest.ok()) return FailRemote("sign", digest.status(), *flags);
  if (flags->Has("--bundle")) return SignBundle(pusher, ref->Name(), *digest, *key, *flags);
  auto signed_images = signer::SignImage(pusher, *digest, *request, *key);
  if (!signed_images.ok()) return FailRemote("sign", signed_images.status(), *flags);
  const std::string name = ref->Name();
  if (flags->Has("--json")) {
    json out = json::array();
    for (const auto& s : *signed_images) out.push_back(SignedJson(name, s));
    std::cout << json{{"signed", out}}.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
  } else {
    for (const auto& s : *signed_images) PrintSigned(name, s);
  }
  return kExitOk;
}

int RunVerify(const std::vector<std::string>& args) {
  auto flags = ParseFlags(args, WithRegistryFlags(VerifyFlagSpec()));
  if (!flags.ok()) return Fail("verify", flags.status().message() + " (see portcullis verify --help)");
  if (flags->help) {
    std::cout << kVerifyUsage << "\n" << kRegistryFlagsHelp;
    return kExitOk;
  }
  if (flags->positional.size() != 1) return Fail("verify", "want exactly one IMAGE (see portcullis verify --help)");
  auto mode = VerifyModeFromFlags(*flags);
  if (!mode.ok()) return Fail("verify", mode.status().message() + " (see portcullis verify --help)");
  if (mode->kind == VerifyMode::Kind::kPolicy) {
    // The policy engine decides; the verdict is JSON on stdout, the reason on stderr.
    auto policy = verifier::Policy::LoadFile(flags->Value("--policy"));
    if (!policy.ok()) return Fail("verify", policy.status());
    auto opts = RemoteOptionsFrom(*flags);
    if (!opts.ok()) return Fail("verify", opts.status());
    auto check = verifier::CheckImage(**policy, flags->positional[0], *opts);
    if (!check.ok()) return FailRemote("verify", check.status(), *flags);
    std::cout << verifier::ImageCheckJson(*check, **policy).dump(2, ' ', false, json::error_handler_t::replace)
              << "\n";
    const verifier::Decision& d = check->decision;
    std::cerr << "portcullis verify: " << check->name << "@" << check->digest.ToString() << ": " << d.verdict()
              << " by " << d.rule << ": " << d.reason << "\n";
    return d.allowed ? kExitOk : kExitRefused;
  }
  const bool keyless = mode->kind == VerifyMode::Kind::kKeyless;
  const std::string image = flags->positional[0];
  auto ref = oci::ParseReference(image);
  if (!ref.ok()) return Fail("verify", ref.status().Annotate(image));
  std::optional<keys::PublicKey> pub;
  if (!keyless) {
    auto k = keys::PublicKey::FromPemFile(flags->Value("--key"));
    if (!k.ok()) return Fail("verify", k.status());
    pub.emplace(std::move(*k));
  }
  auto root = LoadTrustedRoot(flags->Value("--trusted-root"));
  if (!root.ok()) return Fail("verify", root.status());
  auto opts = RemoteOptionsFrom(*flags);
  if (!opts.ok()) return Fail("verify", opts.status());
  auto remote = oci::ConnectRegistry(ref->registry, *opts);
  if (!remote.ok()) return Fail("verify", remote.status());
  const std::string scope = oci::PullScope(ref->repository);
  auto digest = Resolve(*remote->client, *ref, scope);
  if (!digest.ok()) return FailRemote("verify", digest.status(), *flags);
  // The referrers API (or the sha256-<hex> fallback index), then the .sig tag.
  verifier::RegistrySignatureSource source(*remote->client, ref->repository, scope);
  auto found = source.Find(*digest);
  if (!found.ok()) return FailRemote("verify", found.status(), *flags);
  if (keyless) {
    verifier::KeyVerification report = verifier::VerifyWithIdentity(*found, mode->identity, *root, *digest);
    return ReportKeyVerification(ref->Name(), *digest, *found, report, *flags, mode->identity.Describe());
  }
  verifier::KeyVerification report = verifier::VerifyWithKey(*found, *pub, *root, *digest);
  return ReportKeyVerification(ref->Name(), *digest, *found, report, *flags, flags->Value("--key"));
}

int RunPush(const std::vector<std::string>& args) {
  FlagSpec spec = WithRegistryFlags(
      {{"--key", "--passphrase-file"}, {"--sign", "--recursive", "--json"}, {{"-a", "-a"}, {"--annotation", "-a"}}});
  auto flags = ParseFlags(args, spec);
  if (!flags.ok()) return Fail("push", flags.status().message() + " (see portcullis push --help)");
  if (flags->help) {
    std::cout << kPushUsage << "\n" << kRegistryFlagsHelp;
    return kExitOk;
  }
  if (flags->positional.size() != 2)
    return Fail("push", "want OCI_LAYOUT[:REF] and IMAGE (see portcullis push --help)");
  const bool sign = flags->Has("--sign");
  if (sign != flags->Has("--key"))
    return Fail("push", sign ? "--sign needs --key KEY" : "--key is only used with --sign");

  // OCI_LAYOUT[:REF]: the whole argument when it is a layout directory, else split at the last ':'.
  std::string layout = flags->positional[0], layout_ref;
  struct stat st;
  if (::stat((layout + "/index.json").c_str(), &st) != 0) {
    if (size_t colon = layout.rfind(':'); colon != std::string::npos && colon > 0) {
      layout_ref = layout.substr(colon + 1);
      layout = layout.substr(0, colon);
    }
  }
  const std::string image = flags->positional[1];
  auto ref = oci::ParseReference(image);
  if (!ref.ok()) return Fail("push", ref.status().Annotate(image));
  auto top = signer::SelectLayoutManifest(layout, layout_ref);
  if (!top.ok()) return Fail("push", top.status());
  if (ref->digest && *ref->digest != top->digest) {
    return Fail("push", image + " names digest " + ref->digest->ToString() + " but the layout's manifest is " +
                            top->digest.ToString());
  }
  std::optional<signer::SignRequest> request;
  std::optional<keys::PrivateKey> key;
  if (sign) {  // load the key before uploading anything
    auto r = SignRequestFrom(*flags, image);
    if (!r.ok()) return Fail("push", r.status());
    request = std::move(*r);
    auto k = LoadPrivateKey(flags->Value("--key"), *flags);
    if (!k.ok()) return Fail("push", k.status());
    key.emplace(std::move(*k));
  }
  auto opts = RemoteOptionsFrom(*flags);
  if (!opts.ok()) return Fail("push", opts.status());
  auto remote = oci::ConnectRegistry(ref->registry, *opts);
  if (!remote.ok()) return Fail("push", remote.status());
  signer::Pusher pusher(*remote, ref->repository);
  Progress progress(::isatty(STDERR_FILENO) == 1 && !flags->Has("--json"));
  const std::string push_ref = ref->tag.empty() ? top->digest.ToString() : ref->tag;
  auto pushed = signer::PushLayout(pusher, layout, *top, push_ref, [&](const signer::PushEvent& e) { progress(e); });
  if (!pushed.ok()) return FailRemote("push", pushed.status(), *flags);
  const std::string name = ref->Name();
  std::vector<signer::SignedImage> signed_images;
  if (sign) {
    auto s = signer::SignImage(pusher, pushed->digest, *request, *key);
    if (!s.ok()) {
      std::cerr << "portcullis push: pushed " << name << "@" << pushed->digest.ToString() << " but signing failed\n";
      return FailRemote("push", s.status(), *flags);
    }
    signed_images = std::move(*s);
  }
  if (flags->Has("--json")) {
    json sigs = json::array();
    for (const auto& s : signed_images) sigs.push_back(SignedJson(name, s));
    std::cout << json{{"image", name + (ref->tag.empty() ? "" : ":" + ref->tag)},
                      {"digest", pushed->digest.ToString()},
                      {"media_type", pushed->media_type},
                      {"blobs_uploaded", pushed->blobs_uploaded},
                      {"blobs_skipped", pushed->blobs_skipped},
                      {"manifests_pushed", pushed->manifests_pushed},
                      {"signed", sigs}}
                     .dump(2, ' ', false, json::error_handler_t::replace)
              << "\n";
  } else {
    std::cout << "Pushed " << name << (ref->tag.empty() ? "" : ":" + ref->tag) << "@" << pushed->digest.ToString()
              << " (" << pushed->blobs_uploaded << " blobs uploaded, " << pushed->blobs_skipped << " already there)\n";
    for (const auto& s : signed_images) PrintSigned(name, s);
  }
  return kExitOk;
}

}  // namespace portcullis::cli
