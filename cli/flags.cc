#include "cli/flags.h"

namespace portcullis::cli {

StatusOr<Flags> ParseFlags(const std::vector<std::string>& args, const FlagSpec& spec) {
  Flags flags;
  bool only_positional = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (only_positional || a == "-" || !a.starts_with("-")) {
      flags.positional.push_back(a);
      continue;
    }
    if (a == "--") {
      only_positional = true;
      continue;
    }
    if (a == "--help" || a == "-h") {
      flags.help = true;
      continue;
    }
    std::string name = a, value;
    bool has_value = false;
    if (size_t eq = a.find('='); eq != std::string::npos && a.starts_with("--")) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
      has_value = true;
    }
    auto take_value = [&]() -> Status {
      if (!has_value) {
        if (i + 1 >= args.size()) return Status::InvalidArgument("flag " + name + " needs a value");
        value = args[++i];
      }
      if (value.empty()) return Status::InvalidArgument("flag " + name + " has an empty value");
      return Status::Ok();
    };
    if (auto l = spec.lists.find(name); l != spec.lists.end()) {
      PC_RETURN_IF_ERROR(take_value());
      flags.lists[l->second].push_back(value);
    } else if (spec.values.count(name) != 0) {
      PC_RETURN_IF_ERROR(take_value());
      if (flags.values.count(name) != 0) return Status::InvalidArgument("flag " + name + " given twice");
      flags.values[name] = value;
    } else if (spec.bools.count(name) != 0) {
      if (has_value) return Status::InvalidArgument("flag " + name + " takes no value");
      flags.bools.insert(name);
    } else {
      return Status::InvalidArgument("unknown flag " + name);
    }
  }
  return flags;
}

}  // namespace portcullis::cli
