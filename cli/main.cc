// portcullis: one binary, subcommands as cosign and skopeo have them.
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.h"

namespace {

constexpr const char* kUsage = R"(portcullis: a pull-through OCI registry proxy that serves only verified images

Usage: portcullis <command> [flags]

Commands:
  serve      run the pull-through proxy (see: portcullis serve --help)
  key        generate, import and inspect signing keys; sign and verify blobs (see: portcullis key --help)
  sign       sign an image in a registry, as cosign sign --key does (see: portcullis sign --help)
  verify     verify an image's cosign signatures with a public key (see: portcullis verify --help)
  verify-bundle  verify a Sigstore bundle (keyless or key-based) for a file or digest, offline (see: portcullis verify-bundle --help)
  push       upload an OCI image layout to a registry, optionally signing it (see: portcullis push --help)
  config     check a proxy config file (portcullis config check FILE)
  policy     check a trust policy, or test what it decides for an image (see: portcullis policy --help)
  admin      a running proxy's admin API: cache stats/ls/purge/gc/fsck, prefetch, health, metrics (see: portcullis admin --help)
  version    print the version

Exit codes: 0 success, 1 verification or policy refusal, 2 usage or runtime error.
)";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << kUsage;
    return args.empty() ? 2 : 0;
  }
  std::string cmd = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (cmd == "serve") return portcullis::cli::RunServe(rest);
  if (cmd == "key") return portcullis::cli::RunKey(rest);
  if (cmd == "config") return portcullis::cli::RunConfig(rest);
  if (cmd == "sign") return portcullis::cli::RunSign(rest);
  if (cmd == "verify") return portcullis::cli::RunVerify(rest);
  if (cmd == "verify-bundle") return portcullis::cli::RunVerifyBundle(rest);
  if (cmd == "push") return portcullis::cli::RunPush(rest);
  if (cmd == "admin") return portcullis::cli::RunAdmin(rest);
  if (cmd == "policy") return portcullis::cli::RunPolicy(rest);
  if (cmd == "version" || cmd == "--version") {
    std::cout << "portcullis 0.1.0\n";
    return 0;
  }
  std::cerr << "portcullis: unknown command \"" << cmd << "\"\n\n" << kUsage;
  return 2;
}
