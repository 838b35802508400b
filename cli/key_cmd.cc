// `portcullis key`: create, import and use cosign-compatible signing keys.
#include <unistd.h>

#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "cli/commands.h"
#include "cli/flags.h"
#include "keys/encrypted_key.h"
#include "keys/files.h"
#include "keys/key.h"
#include "keys/passphrase.h"
#include "keys/pem.h"
#include "oci/base64.h"

namespace portcullis::cli {

namespace {

using keys::KeyType;
using keys::PrivateKey;
using keys::PublicKey;

constexpr int kExitOk = 0;
constexpr int kExitRefused = 1;
constexpr int kExitError = 2;
constexpr size_t kMaxPayload = 64u << 20;

constexpr const char* kUsage = R"(Usage: portcullis key <subcommand> [flags]

Create, import and use cosign-compatible signing keys. Private keys are written as
"ENCRYPTED SIGSTORE PRIVATE KEY" PEM (scrypt + nacl/secretbox, as cosign does) and
public keys as "PUBLIC KEY" PEM.

Subcommands:
  generate     create a key pair: PREFIX.key (mode 0600) and PREFIX.pub
  public       print the public key of an encrypted private key
  import       encrypt an unencrypted PEM private key into the cosign format
  sign-blob    sign a file; prints the base64 signature (like cosign sign-blob)
  verify-blob  verify a base64 signature over a file with a public key

Passphrase, first found: $PORTCULLIS_PASSWORD, $COSIGN_PASSWORD (either may be set
to empty), --passphrase-file FILE (its first line), a prompt when stdin is a terminal.

Run "portcullis key <subcommand> --help" for its flags.
Exit codes: 0 success, 1 signature does not verify, 2 usage or runtime error.
)";

constexpr const char* kGenerateUsage = R"(Usage: portcullis key generate --output-prefix PREFIX [flags]

Creates a new key pair: PREFIX.key (encrypted private key, mode 0600) and PREFIX.pub.
Neither file is overwritten unless --force is given; files are written atomically.

Flags:
  --output-prefix PREFIX   path prefix of the two files (required)
  --type TYPE              ecdsa-p256 (default; what cosign uses), ecdsa-p384 or ed25519
  --force                  overwrite existing PREFIX.key / PREFIX.pub
  --passphrase-file FILE   read the passphrase from the first line of FILE
                           (used when $PORTCULLIS_PASSWORD and $COSIGN_PASSWORD are unset)
)";

constexpr const char* kPublicUsage = R"(Usage: portcullis key public KEY [--passphrase-file FILE]

Decrypts the private key file KEY and prints its public key as PEM "PUBLIC KEY".

Flags:
  --passphrase-file FILE   read the passphrase from the first line of FILE
)";

constexpr const char* kImportUsage = R"(Usage: portcullis key import PEM --output-prefix PREFIX [flags]

Encrypts an unencrypted private key (PEM "PRIVATE KEY", "EC PRIVATE KEY" or
"RSA PRIVATE KEY"; ECDSA P-256/P-384, Ed25519 or RSA >= 2048 bits) into
PREFIX.key (mode 0600) and writes PREFIX.pub.

Flags:
  --output-prefix PREFIX   path prefix of the two files (required)
  --force                  overwrite existing PREFIX.key / PREFIX.pub
  --passphrase-file FILE   read the new passphrase from the first line of FILE
)";

constexpr const char* kSignBlobUsage = R"(Usage: portcullis key sign-blob KEY --payload FILE [flags]

Signs the bytes of FILE with the encrypted private key KEY and prints the signature
as standard base64 (ECDSA: ASN.1 DER over SHA-256 for P-256, SHA-384 for P-384;
Ed25519: pure; RSA: PKCS#1 v1.5 SHA-256), as cosign sign-blob does.

Flags:
  --payload FILE            the file to sign (required)
  --output-signature FILE   write the base64 signature to FILE instead of stdout
  --passphrase-file FILE    read the passphrase from the first line of FILE
)";

constexpr const char* kVerifyBlobUsage = R"(Usage: portcullis key verify-blob PUB --payload FILE --signature SIGFILE

Verifies that SIGFILE (a base64 signature, as sign-blob and cosign write it) is a
signature over the bytes of FILE by the public key PUB (PEM "PUBLIC KEY").
Exit 0 and "Verified OK" when it is, 1 when it is not, 2 on any other error.

Flags:
  --payload FILE       the signed file (required)
  --signature SIGFILE  the base64 signature (required)
)";

StatusOr<Flags> ParseFlags(const std::vector<std::string>& args, std::set<std::string, std::less<>> value_flags,
                           std::set<std::string, std::less<>> bool_flags) {
  return cli::ParseFlags(args, FlagSpec{std::move(value_flags), std::move(bool_flags), {}});
}

int Fail(std::string_view sub, const Status& st) {
  std::cerr << "portcullis key " << sub << ": " << st.message() << "\n";
  return kExitError;
}

int Fail(std::string_view sub, const std::string& message) {
  return Fail(sub, Status::InvalidArgument(message));
}

StatusOr<keys::SecretBytes> Passphrase(const Flags& flags, bool confirm) {
  keys::PassphraseRequest req;
  req.passphrase_file = flags.Value("--passphrase-file");
  req.confirm = confirm;
  return keys::GetPassphrase(req);
}

// Encrypts `key` and writes PREFIX.key and PREFIX.pub; shared by generate and import.
int WriteKeyPair(std::string_view sub, const PrivateKey& key, const Flags& flags) {
  const std::string prefix = flags.Value("--output-prefix");
  const std::string key_path = prefix + ".key", pub_path = prefix + ".pub";
  const bool force = flags.Has("--force");
  if (!force) {
    for (const std::string& p : {key_path, pub_path}) {
      if (keys::PathExists(p)) return Fail(sub, p + " already exists (use --force to overwrite)");
    }
  }
  auto pass = Passphrase(flags, /*confirm=*/true);
  if (!pass.ok()) return Fail(sub, pass.status());
  auto priv_pem = key.ToEncryptedPem(pass->view());
  if (!priv_pem.ok()) return Fail(sub, priv_pem.status());
  auto pub_pem = key.PublicKeyPem();
  if (!pub_pem.ok()) return Fail(sub, pub_pem.status());
  Status st = keys::WriteFileAtomically(key_path, *priv_pem, 0600, force);
  if (!st.ok()) return Fail(sub, st);
  st = keys::WriteFileAtomically(pub_path, *pub_pem, 0644, force);
  if (!st.ok()) {
    // Without --force PREFIX.key did not exist before: leave nothing half-written.
    if (!force) ::unlink(key_path.c_str());
    return Fail(sub, st);
  }
  std::cerr << "Private key written to " << key_path << "\nPublic key written to " << pub_path << "\n";
  return kExitOk;
}

int Generate(const std::vector<std::string>& args) {
  auto flags = ParseFlags(args, {"--output-prefix", "--type", "--passphrase-file"}, {"--force"});
  if (!flags.ok()) return Fail("generate", flags.status().message() + " (see portcullis key generate --help)");
  if (flags->help) {
    std::cout << kGenerateUsage;
    return kExitOk;
  }
  if (!flags->positional.empty()) return Fail("generate", "unexpected argument \"" + flags->positional[0] + "\"");
  if (!flags->Has("--output-prefix")) return Fail("generate", "missing --output-prefix PREFIX");
  std::string type_name = flags->Has("--type") ? flags->Value("--type") : "ecdsa-p256";
  auto type = keys::ParseKeyType(type_name);
  if (!type.ok() || *type == KeyType::kRsa) {
    return Fail("generate", "unsupported --type \"" + type_name + "\" (accepted: ecdsa-p256, ecdsa-p384, ed25519)");
  }
  auto key = PrivateKey::Generate(*type);
  if (!key.ok()) return Fail("generate", key.status());
  return WriteKeyPair("generate", *key, *flags);
}

int Import(const std::vector<std::string>& args) {
  auto flags = ParseFlags(args, {"--output-prefix", "--passphrase-file"}, {"--force"});
  if (!flags.ok()) return Fail("import", flags.status().message() + " (see portcullis key import --help)");
  if (flags->help) {
    std::cout << kImportUsage;
    return kExitOk;
  }
  if (flags->positional.size() != 1) return Fail("import", "want exactly one PEM file to import");
  if (!flags->Has("--output-prefix")) return Fail("import", "missing --output-prefix PREFIX");
  const std::string& path = flags->positional[0];
  auto text = keys::ReadSecretFile(path);  // a plaintext key: kept in a wiped buffer
  if (!text.ok()) return Fail("import", text.status());
  auto key = PrivateKey::FromUnencryptedPem(text->view());
  if (!key.ok()) return Fail("import", key.status().Annotate(path));
  return WriteKeyPair("import", *key, *flags);
}

// Reads and decrypts a private key file, asking for the passphrase only once the
// file is known to be an encrypted key.
StatusOr<PrivateKey> LoadPrivateKey(const std::string& path, const Flags& flags) {
  PC_ASSIGN_OR_RETURN(std::string text, keys::ReadSmallFile(path));
  std::vector<std::string> types = keys::PemTypes(text);
  if (types.empty()) return Status::InvalidArgument(path + ": not a PEM file");
  if (types[0] != keys::kSigstorePrivateKeyPemType && types[0] != keys::kCosignPrivateKeyPemType) {
    return Status::InvalidArgument(path + ": unknown PEM type \"" + types[0] + "\" (want \"" +
                                   std::string(keys::kSigstorePrivateKeyPemType) + "\" or \"" +
                                   std::string(keys::kCosignPrivateKeyPemType) + "\")");
  }
  PC_ASSIGN_OR_RETURN(keys::SecretBytes pass, Passphrase(flags, /*confirm=*/false));
  auto key = PrivateKey::FromEncryptedPem(text, pass.view());
  if (!key.ok()) return key.status().Annotate(path);
  return key;
}

int Public(const std::vector<std::string>& args) {
  auto flags = ParseFlags(args, {"--passphrase-file"}, {});
  if (!flags.ok()) return Fail("public", flags.status().message() + " (see portcullis key public --help)");
  if (flags->help) {
    std::cout << kPublicUsage;
    return kExitOk;
  }
  if (flags->positional.size() != 1) return Fail("public", "want exactly one private key file");
  auto key = LoadPrivateKey(flags->positional[0], *flags);
  if (!key.ok()) return Fail("public", key.status());
  auto pem = key->PublicKeyPem();
  if (!pem.ok()) return Fail("public", pem.status());
  std::cout << *pem;
  return kExitOk;
}

int SignBlob(const std::vector<std::string>& args) {
  auto flags = ParseFlags(args, {"--payload", "--output-signature", "--passphrase-file"}, {});
  if (!flags.ok()) return Fail("sign-blob", flags.status().message() + " (see portcullis key sign-blob --help)");
  if (flags->help) {
    std::cout << kSignBlobUsage;
    return kExitOk;
  }
  if (flags->positional.size() != 1) return Fail("sign-blob", "want exactly one private key file");
  if (!flags->Has("--payload")) return Fail("sign-blob", "missing --payload FILE");
  auto payload = keys::ReadSmallFile(flags->Value("--payload"), kMaxPayload);
  if (!payload.ok()) return Fail("sign-blob", payload.status());
  auto key = LoadPrivateKey(flags->positional[0], *flags);
  if (!key.ok()) return Fail("sign-blob", key.status());
  auto sig = key->Sign(*payload);
  if (!sig.ok()) return Fail("sign-blob", sig.status());
  std::string b64 = oci::Base64Encode(*sig);
  if (flags->Has("--output-signature")) {
    Status st = keys::WriteFileAtomically(flags->Value("--output-signature"), b64, 0644, /*overwrite=*/true);
    if (!st.ok()) return Fail("sign-blob", st);
    std::cerr << "Signature written to " << flags->Value("--output-signature") << "\n";
  } else {
    std::cout << b64 << "\n";
  }
  return kExitOk;
}

int VerifyBlob(const std::vector<std::string>& args) {
  auto flags = ParseFlags(args, {"--payload", "--signature"}, {});
  if (!flags.ok()) return Fail("verify-blob", flags.status().message() + " (see portcullis key verify-blob --help)");
  if (flags->help) {
    std::cout << kVerifyBlobUsage;
    return kExitOk;
  }
  if (flags->positional.size() != 1) return Fail("verify-blob", "want exactly one public key file");
  if (!flags->Has("--payload")) return Fail("verify-blob", "missing --payload FILE");
  if (!flags->Has("--signature")) return Fail("verify-blob", "missing --signature SIGFILE");
  auto pub = PublicKey::FromPemFile(flags->positional[0]);
  if (!pub.ok()) return Fail("verify-blob", pub.status());
  auto payload = keys::ReadSmallFile(flags->Value("--payload"), kMaxPayload);
  if (!payload.ok()) return Fail("verify-blob", payload.status());
  const std::string sig_path = flags->Value("--signature");
  auto sig_text = keys::ReadSmallFile(sig_path);
  if (!sig_text.ok()) return Fail("verify-blob", sig_text.status());
  std::string b64;
  for (char c : *sig_text) {
    if (c != '\n' && c != '\r' && c != ' ' && c != '\t') b64.push_back(c);
  }
  auto sig = oci::Base64Decode(b64);
  if (!sig || sig->empty()) return Fail("verify-blob", sig_path + ": signature is not standard base64");
  Status st = pub->Verify(*payload, *sig);
  if (!st.ok()) {
    std::cerr << "portcullis key verify-blob: " << st.message() << "\n";
    return st.Is(Code::kDenied) ? kExitRefused : kExitError;
  }
  std::cerr << "Verified OK\n";
  return kExitOk;
}

}  // namespace

int RunKey(const std::vector<std::string>& args) {
  if (args.empty()) {
    std::cerr << kUsage;
    return kExitError;
  }
  const std::string& sub = args[0];
  if (sub == "--help" || sub == "-h" || sub == "help") {
    std::cout << kUsage;
    return kExitOk;
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (sub == "generate") return Generate(rest);
  if (sub == "public") return Public(rest);
  if (sub == "import") return Import(rest);
  if (sub == "sign-blob") return SignBlob(rest);
  if (sub == "verify-blob") return VerifyBlob(rest);
  std::cerr << "portcullis key: unknown subcommand \"" << sub << "\"\n\n" << kUsage;
  return kExitError;
}

}  // namespace portcullis::cli
