#include "verifier/strict_json.h"

#include <cctype>
#include <set>
#include <string>
#include <vector>

namespace portcullis::verifier {

using nlohmann::json;

StatusOr<json> ParseStrictJson(std::string_view text, KeyMatch match) {
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  json::parser_callback_t cb = [&](int, json::parse_event_t ev, json& parsed) {
    switch (ev) {
      case json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case json::parse_event_t::key: {
        std::string key = parsed.get<std::string>();
        if (match == KeyMatch::kCaseInsensitive) {
          for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
        if (!open_objects.empty() && !open_objects.back().insert(key).second && duplicate.empty()) {
          duplicate = parsed.get<std::string>();
        }
        break;
      }
      default:
        break;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text.begin(), text.end(), cb, /*allow_exceptions=*/true);
  } catch (const json::exception& e) {
    std::string msg = e.what();
    if (size_t p = msg.find("] "); msg.starts_with("[json.exception") && p != std::string::npos) {
      msg = msg.substr(p + 2);
    }
    return Status::InvalidArgument("not valid JSON: " + msg);
  }
  if (!duplicate.empty()) return Status::InvalidArgument("duplicate key \"" + duplicate + "\"");
  return j;
}

}  // namespace portcullis::verifier
