// Command-line flags shared by the subcommands: "--flag value", "--flag=value",
// boolean "--flag", repeatable list flags (with aliases such as -a), "--help"/-h,
// and "--" ending flags. Flags may stand before or after positional arguments.
#pragma once

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "oci/status.h"

namespace portcullis::cli {

struct Flags {
  std::vector<std::string> positional;
  std::map<std::string, std::string, std::less<>> values;
  std::map<std::string, std::vector<std::string>, std::less<>> lists;
  std::set<std::string, std::less<>> bools;
  bool help = false;

  std::string Value(std::string_view name) const {
    auto it = values.find(name);
    return it == values.end() ? std::string() : it->second;
  }
  bool Has(std::string_view name) const { return values.count(name) != 0 || bools.count(name) != 0; }
  std::vector<std::string> List(std::string_view name) const {
    auto it = lists.find(name);
    return it == lists.end() ? std::vector<std::string>() : it->second;
  }
};

struct FlagSpec {
  std::set<std::string, std::less<>> values;              // "--flag VALUE" once
  std::set<std::string, std::less<>> bools;               // "--flag"
  std::map<std::string, std::string, std::less<>> lists;  // repeatable; alias -> canonical
};

// INVALID_ARGUMENT naming the flag: unknown, missing or empty value, given
// twice, or a value for a boolean.
StatusOr<Flags> ParseFlags(const std::vector<std::string>& args, const FlagSpec& spec);

}  // namespace portcullis::cli
