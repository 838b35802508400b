// `portcullis policy check FILE` and `portcullis policy test IMAGE --policy FILE`:
// validate and explain a trust policy, and show what it decides for an image in a
// registry. The engine is verifier/policy.h; this file parses flags and prints.
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "keys/passphrase.h"
#include "verifier/image_check.h"
#include "verifier/policy.h"
#include "oci/remote.h"

namespace portcullis::cli {

namespace {

constexpr int kExitOk = 0;
constexpr int kExitRefused = 1;
constexpr int kExitError = 2;

constexpr const char* kUsage = R"(Usage: portcullis policy <command>

Commands:
  check FILE                       validate a trust policy and explain its rules
  test IMAGE --policy FILE [flags] show the rule that applies to IMAGE and the verdict

A policy is either Portcullis' own JSON ({"keys": ..., "rules": [...], "default": ...})
or a containers-policy.json ({"default": [...], "transports": {"docker": {...}}});
the format is told from the content. Exit codes: check: 0 valid, 2 invalid;
test: 0 accepted (or warn), 1 refused, 2 error.
)";

constexpr const char* kTestUsage = R"(Usage: portcullis policy test IMAGE --policy FILE [flags]

Resolves IMAGE (e.g. 127.0.0.1:5000/lab/small:v1) in its registry, finds its cosign
signatures (referrers API or the sha256-<hex> fallback tag, and the sha256-<hex>.sig
tag) when the matching rule needs them, and prints the rule, the verdict and why.
The image's canonical name is <registry as written>/<repository> (docker.io for
Docker Hub), e.g. 127.0.0.1:5000/lab/small.
Exit 0 accepted (or warn), 1 refused, 2 error.

Flags:
  --policy FILE                  the trust policy
  --json                         print the verdict as JSON (as verify --policy does)
  --allow-http                   talk plain http to the registry (default: https only)
  --registry-username USER       user name for the registry (with --registry-password-file)
  --registry-password-file FILE  the password: the first line of FILE
)";

struct Parsed {
  std::vector<std::string> positional;
  std::map<std::string, std::string> values;
  std::set<std::string> bools;
  bool help = false;
};

StatusOr<Parsed> Parse(const std::vector<std::string>& args, const std::set<std::string>& value_flags,
                       const std::set<std::string>& bool_flags) {
  Parsed p;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      p.help = true;
      continue;
    }
    if (!a.starts_with("--")) {
      p.positional.push_back(a);
      continue;
    }
    std::string name = a, value;
    bool has_value = false;
    if (size_t eq = a.find('='); eq != std::string::npos) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
      has_value = true;
    }
    if (value_flags.count(name)) {
      if (!has_value) {
        if (i + 1 >= args.size()) return Status::InvalidArgument("flag " + name + " needs a value");
        value = args[++i];
      }
      if (value.empty()) return Status::InvalidArgument("flag " + name + " has an empty value");
      if (p.values.count(name)) return Status::InvalidArgument("flag " + name + " given twice");
      p.values[name] = value;
    } else if (bool_flags.count(name) && !has_value) {
      p.bools.insert(name);
    } else {
      return Status::InvalidArgument("unknown flag " + name);
    }
  }
  return p;
}

int Fail(const std::string& cmd, const std::string& message) {
  std::cerr << "portcullis policy " << cmd << ": " << message << "\n";
  return kExitError;
}

int RunCheck(const std::vector<std::string>& args) {
  auto flags = Parse(args, {}, {});
  if (!flags.ok()) return Fail("check", flags.status().message());
  if (flags->help) {
    std::cout << "Usage: portcullis policy check FILE\n\nValidates a trust policy (keys load, patterns parse, "
                 "every field known) and explains it.\nExit 0 valid, 2 invalid (the message names the field).\n";
    return kExitOk;
  }
  if (flags->positional.size() != 1) return Fail("check", "want exactly one FILE (see portcullis policy --help)");
  auto policy = verifier::Policy::LoadFile(flags->positional[0]);
  if (!policy.ok()) return Fail("check", policy.status().message());
  std::cout << flags->positional[0] << ": valid\n" << (*policy)->Explain();
  return kExitOk;
}

int RunTest(const std::vector<std::string>& args) {
  auto flags = Parse(args, {"--policy", "--registry-username", "--registry-password-file"}, {"--allow-http", "--json"});
  if (!flags.ok()) return Fail("test", flags.status().message() + " (see portcullis policy test --help)");
  if (flags->help) {
    std::cout << kTestUsage;
    return kExitOk;
  }
  if (flags->positional.size() != 1) return Fail("test", "want exactly one IMAGE (see portcullis policy test --help)");
  if (!flags->values.count("--policy")) return Fail("test", "missing --policy FILE");
  auto policy = verifier::Policy::LoadFile(flags->values["--policy"]);
  if (!policy.ok()) return Fail("test", policy.status().message());

  oci::RemoteOptions opts;
  opts.allow_http = flags->bools.count("--allow-http") != 0;
  const bool user = flags->values.count("--registry-username"), pass = flags->values.count("--registry-password-file");
  if (user != pass) return Fail("test", "--registry-username and --registry-password-file go together");
  if (user) {
    auto pw = keys::ReadPassphraseFile(flags->values["--registry-password-file"]);
    if (!pw.ok()) return Fail("test", pw.status().message());
    opts.credentials = oci::Credentials{flags->values["--registry-username"], std::string(pw->view())};
  }
  const std::string image = flags->positional[0];
  auto check = verifier::CheckImage(**policy, image, opts);
  if (!check.ok()) {
    std::string msg = check.status().message();
    if (check.status().Is(Code::kUpstreamUnavailable) && !opts.allow_http &&
        msg.find("https://") != std::string::npos) {
      msg += " (a plain-http registry needs --allow-http)";
    }
    return Fail("test", msg);
  }
  const verifier::Decision& d = check->decision;
  if (flags->bools.count("--json")) {
    std::cout
        << verifier::ImageCheckJson(*check, **policy).dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
        << "\n";
  } else {
    std::cout << "image:    " << image << "\n"
              << "name:     " << check->name << (check->tag.empty() ? "" : " (tag " + check->tag + ")") << "\n"
              << "digest:   " << check->digest.ToString() << "\n"
              << "policy:   " << (*policy)->origin() << " (" << (*policy)->format() << ", " << (*policy)->version()
              << ")\n"
              << "rule:     " << d.rule << "\n"
              << "verdict:  " << d.verdict() << "\n"
              << "reason:   " << d.reason << "\n";
    if (!d.keys_matched.empty()) {
      std::cout << "keys:    ";
      for (const auto& k : d.keys_matched) std::cout << " " << k;
      std::cout << "\n";
    }
    if (check->signatures_looked_up) {
      std::cout << "signatures: " << d.signatures_found << " found"
                << (check->referrers_api ? " (referrers API, .sig tag)" : " (fallback tag, .sig tag)") << "\n";
      for (const auto& line : d.details) std::cout << "  " << line << "\n";
    } else {
      std::cout << "signatures: not looked up (the rule decides without them)\n";
    }
  }
  return d.allowed ? kExitOk : kExitRefused;
}

}  // namespace

int RunPolicy(const std::vector<std::string>& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << kUsage;
    return args.empty() ? kExitError : kExitOk;
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "check") return RunCheck(rest);
  if (args[0] == "test") return RunTest(rest);
  std::cerr << "portcullis policy: unknown command \"" << args[0] << "\"\n\n" << kUsage;
  return kExitError;
}

}  // namespace portcullis::cli
