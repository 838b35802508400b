// Trust policy files in both languages (verifier::Policy::Parse detects which):
// the Portcullis policy format and containers-policy.json. Relative key paths
// resolve against a temporary folder holding one public key, "cosign.pub"
// (the seeds name it); a parsed policy is asked which rule decides for an image.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "oci/digest.h"
#include "verifier/policy.h"

using namespace portcullis;

namespace {
constexpr const char* kPublicKeyPem =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEW7AqR1vjhC6IRq335pUa9C5rGf9h\n"
    "cDv7aWRLAoY9L02FYU3nSAruxWccxC5DHWwfLhb2PW0Vr9CFhN4Sv7Usug==\n"
    "-----END PUBLIC KEY-----\n";
std::string g_base_dir;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  namespace fs = std::filesystem;
  g_base_dir = (fs::temp_directory_path() / ("portcullis-fuzz-policy-" + std::to_string(getpid()))).string();
  fs::create_directories(g_base_dir);
  std::ofstream(g_base_dir + "/cosign.pub") << kPublicKeyPem;
  // The folder is removed when the process ends normally (libFuzzer exits via exit()).
  std::atexit([] { std::filesystem::remove_all(g_base_dir); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto p = verifier::Policy::Parse(text, "fuzz.json", g_base_dir);
  if (p.ok()) {
    static const oci::Digest kImage = oci::Digest::Sha256Of("image");
    (void)(*p)->MatchedRule("docker.io/library/alpine", "latest", kImage);
    (void)(*p)->MatchedRule("registry.example/team/app", "", kImage);
    (void)(*p)->version();
  }
  return 0;
}
