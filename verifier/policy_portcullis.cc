// Portcullis' own policy format (see verifier/policy.md).
#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "verifier/glob.h"
#include "verifier/identity.h"
#include "verifier/policy_internal.h"
#include "verifier/signature_check.h"

namespace portcullis::verifier::internal {

namespace {

using nlohmann::json;

enum class Action { kAccept, kReject, kRequire };
enum class DefaultAction { kAccept, kReject, kWarn };

struct Rule {
  size_t index = 0;  // position in the file
  NamePattern match;
  Action action = Action::kReject;
  std::vector<size_t> keys;  // into PortcullisPolicy::keys_, as listed
  std::vector<KeylessIdentity> identities;  // each counts as one signer toward the threshold
  size_t threshold = 1;
  std::optional<NamePattern> identity;
  bool warn = false;
};

bool ValidKeyName(const std::string& s) {
  if (s.empty() || s.size() > 128) return false;
  for (char c : s) {
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

class PortcullisPolicy : public Policy {
 public:
  PortcullisPolicy(std::string origin, std::string version, std::vector<TrustedKey> keys, std::vector<Rule> rules,
                   DefaultAction def, std::shared_ptr<const sigstore::TrustedRoot> root, std::string root_where)
      : Policy(std::move(origin), std::move(version)),
        keys_(std::move(keys)),
        rules_(std::move(rules)),
        default_(def),
        root_(std::move(root)),
        root_where_(std::move(root_where)) {}

  std::string format() const override { return "portcullis"; }

  std::string MatchedRule(const std::string& name, const std::string&, const oci::Digest& digest) const override {
    const Rule* r = Match(name, digest);
    return r ? r->match.text() : "default";
  }

  bool NeedsSignatures(const std::string& name, const std::string&, const oci::Digest& digest) const override {
    const Rule* r = Match(name, digest);
    return r != nullptr && r->action == Action::kRequire;
  }

  bool DecisionDependsOnTag() const override { return false; }

  bool AcceptsEverything() const override {
    if (default_ == DefaultAction::kReject) return false;
    for (const Rule& r : rules_) {
      if (r.action != Action::kAccept && !r.warn) return false;
    }
    return true;
  }

  StatusOr<Decision> Evaluate(const std::string& name, const std::string& tag, const oci::Digest& digest,
                              SignatureSource& sigs) const override;

  std::string Explain() const override;

 private:
  const Rule* Match(const std::string& name, const oci::Digest& digest) const {
    for (const Rule& r : rules_) {
      if (r.match.Matches(name, digest)) return &r;
    }
    return nullptr;
  }
  Decision Require(const Rule& r, const oci::Digest& digest, const std::vector<FoundSignature>& found) const;

  std::vector<TrustedKey> keys_;
  std::vector<Rule> rules_;  // most specific first
  DefaultAction default_;
  std::shared_ptr<const sigstore::TrustedRoot> root_;  // for Sigstore bundles; null when no rule requires
  std::string root_where_;                               // "built-in public-good" or "file /abs/path"
};

StatusOr<Decision> PortcullisPolicy::Evaluate(const std::string& name, const std::string&, const oci::Digest& digest,
                                              SignatureSource& sigs) const {
  if (name.empty()) return Status::InvalidArgument("policy evaluation needs an image name");
  Decision d;
  const Rule* r = Match(name, digest);
  if (r == nullptr) {
    d.rule = "default";
    switch (default_) {
      case DefaultAction::kAccept:
        d.allowed = true;
        d.reason = "no rule matches " + name + "; the default accepts";
        break;
      case DefaultAction::kWarn:
        d.allowed = true;
        d.warn_only = true;
        d.reason = "no rule matches " + name + "; the default warns";
        break;
      case DefaultAction::kReject:
        d.reason = "no rule matches " + name + "; the default rejects";
        break;
    }
    return d;
  }
  switch (r->action) {
    case Action::kAccept:
      d.rule = r->match.text();
      d.allowed = true;
      d.reason = "accepted by rule " + r->match.text();
      return d;
    case Action::kReject:
      d.rule = r->match.text();
      d.reason = "rejected by rule " + r->match.text();
      break;
    case Action::kRequire: {
      auto found = sigs.Find(digest);
      if (!found.ok()) {
        // A lookup past its bounds is a refusal, not an outage (review M5).
        if (!found.status().Is(Code::kLimitExceeded)) return found.status();
        d.rule = r->match.text();
        d.reason = found.status().message();
        break;
      }
      d = Require(*r, digest, *found);
      break;
    }
  }
  if (!d.allowed && r->warn) {
    d.allowed = true;
    d.warn_only = true;
  }
  return d;
}

Decision PortcullisPolicy::Require(const Rule& r, const oci::Digest& digest,
                                   const std::vector<FoundSignature>& found) const {
  Decision d;
  d.rule = r.match.text();
  d.signatures_found = found.size();
  std::vector<bool> key_ok(r.keys.size(), false);
  std::vector<bool> id_ok(r.identities.size(), false);
  std::vector<std::string> notes;  // problems with signatures made by trusted keys
  auto note = [&](const std::string& n) {
    if (std::find(notes.begin(), notes.end(), n) == notes.end()) notes.push_back(n);
  };
  // The rule's signed docker-reference check (keys and legacy keyless .sig).
  auto ref_ok = [&](const std::string& docker_reference, std::string* why) {
    if (!r.identity) return true;
    auto ref = ParseNormalizedRef(docker_reference);
    std::string id = ref.ok() ? ref->name : docker_reference;
    if (ref.ok() && r.identity->MatchesName(id)) return true;
    *why = "identity " + id + " does not match " + r.identity->text();
    return false;
  };
  for (const FoundSignature& sig : found) {
    std::string line = SignatureLabel(sig) + ": ";
    std::vector<std::string> outcome;
    if (!sig.bundle && root_ && !r.identities.empty() && HasCertificate(sig)) {  // a legacy keyless .sig
      for (size_t j = 0; j < r.identities.size(); ++j) {
        const std::string who = r.identities[j].Label();
        LegacyKeylessCheck c = CheckLegacyKeyless(sig, *root_, digest, r.identities[j]);
        std::string why;
        if (c.kind == BundleCheck::Kind::kUnreadable) {
          outcome.push_back("unusable: " + c.detail);
          break;
        }
        if (c.kind == BundleCheck::Kind::kVerified && !ref_ok(c.signature.payload.docker_reference, &why)) {
          c.kind = BundleCheck::Kind::kRefused;
          c.detail = why;
        }
        if (c.kind == BundleCheck::Kind::kVerified) {
          id_ok[j] = true;
          outcome.push_back("verified by " + who);
        } else if (c.kind == BundleCheck::Kind::kRefused) {
          note("keyless signature not verified for " + who + ": " + c.detail);
          outcome.push_back("not verified for " + who + ": " + c.detail);
        }
      }
    }
    if (sig.bundle && r.identity) {  // a bundle carries no docker-reference to check
      d.details.push_back(line + "ignored: the rule checks the signed docker-reference, which a bundle does not carry");
      continue;
    }
    if (sig.bundle) {
      std::vector<const TrustedKey*> rule_keys;
      for (size_t k : r.keys) rule_keys.push_back(&keys_[k]);
      std::vector<std::string> refusals;
      if (root_) CheckBundleForRule(sig, *root_, digest, rule_keys, r.identities, key_ok, id_ok, outcome, refusals);
      for (const std::string& n : refusals) note(n);
      if (outcome.empty()) outcome.push_back("no trusted key or identity of this rule verifies it");
      d.details.push_back(line + JoinList(outcome, "; "));
      continue;
    }
    bool unreadable = false;
    for (size_t j = 0; j < r.keys.size() && !unreadable; ++j) {
      const TrustedKey& k = keys_[r.keys[j]];
      SignatureCheck c = CheckSignature(sig, *k.key, digest);
      switch (c.kind) {
        case SignatureCheck::Kind::kUnreadable:
          outcome.push_back("unusable: " + c.detail);
          unreadable = true;
          break;
        case SignatureCheck::Kind::kOtherKey:
          break;
        case SignatureCheck::Kind::kBadPayload:
          note("signature by " + k.name + " has an invalid payload: " + c.detail);
          outcome.push_back("signed by " + k.name + " but " + c.detail);
          break;
        case SignatureCheck::Kind::kWrongDigest:
          note(c.detail);
          outcome.push_back("signed by " + k.name + " but " + c.detail);
          break;
        case SignatureCheck::Kind::kVerified: {
          if (std::string n; !ref_ok(c.payload.docker_reference, &n)) {
            note(n);
            outcome.push_back("signed by " + k.name + " but " + n);
            break;
          }
          key_ok[j] = true;
          outcome.push_back("verified by " + k.name);
          break;
        }
      }
    }
    if (outcome.empty()) outcome.push_back("no trusted key of this rule verifies it");
    d.details.push_back(line + JoinList(outcome, "; "));
  }
  std::vector<std::string> all_names;
  for (size_t j = 0; j < r.keys.size(); ++j) {
    all_names.push_back(keys_[r.keys[j]].name);
    if (key_ok[j]) d.keys_matched.push_back(keys_[r.keys[j]].name);
  }
  for (size_t j = 0; j < r.identities.size(); ++j) {
    all_names.push_back(r.identities[j].Label());
    if (id_ok[j]) d.keys_matched.push_back(r.identities[j].Label());
  }
  const size_t n = r.keys.size() + r.identities.size(), got = d.keys_matched.size();
  const std::string count = std::to_string(r.threshold) + " of " + std::to_string(n) +
                            (r.identities.empty() ? " keys" : " keys/identities") + " required, " +
                            std::to_string(got) + " found" + (got ? " (" + JoinList(d.keys_matched) + ")" : "");
  if (got >= r.threshold) {
    d.allowed = true;
    d.reason = count;
    return d;
  }
  if (notes.size() > 3) notes.resize(3);
  if (r.threshold == 1) {
    if (!notes.empty()) {
      d.reason = JoinList(notes, "; ");
    } else if (found.empty()) {
      d.reason = "no signature by a trusted key (no signatures found for " + digest.ToString() + ")";
    } else {
      d.reason = "no signature by a trusted key (" + std::to_string(found.size()) +
                 (found.size() == 1 ? " signature" : " signatures") + " found, none by " + JoinList(all_names) + ")";
    }
  } else {
    d.reason = count;
    if (!notes.empty())
      d.reason += "; " + JoinList(notes, "; ");
    else if (found.empty())
      d.reason += " (no signatures found for " + digest.ToString() + ")";
  }
  return d;
}

std::string PortcullisPolicy::Explain() const {
  std::ostringstream o;
  o << "format: portcullis\nversion: " << version() << "\n";
  std::set<size_t> used;
  for (const Rule& r : rules_) used.insert(r.keys.begin(), r.keys.end());
  o << "keys:" << (keys_.empty() ? " (none)" : "") << "\n";
  for (size_t i = 0; i < keys_.size(); ++i) {
    o << "  " << keys_[i].name << ": " << keys::KeyTypeName(keys_[i].key->type()) << ", " << keys_[i].where
      << (used.count(i) ? "" : "  (warning: no rule uses this key)") << "\n";
  }
  if (root_) o << "sigstore trusted root (for bundles and keyless .sig signatures): " << root_where_ << "\n";
  o << "rules, in the order they are tried (most specific first):\n";
  if (rules_.empty()) o << "  (none)\n";
  for (size_t i = 0; i < rules_.size(); ++i) {
    const Rule& r = rules_[i];
    o << "  " << (i + 1) << ". " << r.match.text() << "  (rules[" << r.index << "])\n      ";
    switch (r.action) {
      case Action::kAccept:
        o << "accept without signatures";
        break;
      case Action::kReject:
        o << "reject";
        break;
      case Action::kRequire: {
        std::vector<std::string> names;
        for (size_t k : r.keys) names.push_back(keys_[k].name);
        for (const KeylessIdentity& id : r.identities) names.push_back(id.Label());
        o << "require signatures by " << r.threshold << " of " << (r.keys.size() + r.identities.size())
          << (r.identities.empty() ? " keys [" : " keys/identities [") << JoinList(names) << "]";
        for (const KeylessIdentity& id : r.identities) o << "\n      " << id.Label() << ": " << id.Describe();
        if (r.identity) o << ", signed identity matching " << r.identity->text();
        break;
      }
    }
    if (r.warn && r.action != Action::kAccept) o << "; mode warn (failures are served and logged)";
    o << "\n";
  }
  o << "default (no rule matches): "
    << (default_ == DefaultAction::kAccept ? "accept"
        : default_ == DefaultAction::kWarn ? "warn"
                                           : "reject")
    << "\n";
  return o.str();
}

}  // namespace

StatusOr<std::shared_ptr<const Policy>> ParsePortcullisPolicy(const json& j, const std::string& text,
                                                              const std::string& origin, const std::string& base_dir) {
  PC_RETURN_IF_ERROR(CheckFields(origin, "", j, {"keys", "rules", "default", "trusted_root"}));
  std::vector<std::string> version_parts = {text};

  // keys
  std::vector<TrustedKey> keys;
  std::map<std::string, size_t> key_index;
  if (auto it = j.find("keys"); it != j.end()) {
    if (!it->is_object()) return FieldError(origin, "keys", "must be an object of named keys, not " + TypeOf(*it));
    for (const auto& [name, entry] : it->items()) {
      const std::string where = "keys." + name;
      if (!ValidKeyName(name)) return FieldError(origin, where, "key names are [A-Za-z0-9._-]+");
      if (!entry.is_object()) {
        return FieldError(origin, where, "must be {\"path\": FILE} or {\"data\": PEM}, not " + TypeOf(entry));
      }
      PC_RETURN_IF_ERROR(CheckFields(origin, where, entry, {"path", "data"}));
      const bool has_path = entry.contains("path"), has_data = entry.contains("data");
      if (has_path == has_data) return FieldError(origin, where, "needs exactly one of \"path\" and \"data\"");
      const char* field = has_path ? "path" : "data";
      const json& v = entry.at(field);
      if (!v.is_string() || v.get<std::string>().empty()) {
        return FieldError(origin, where + "." + field, "must be a non-empty string");
      }
      StatusOr<TrustedKey> k = Status::Internal("unset");
      if (has_path) {
        std::string bytes;
        k = LoadKeyFile(name, v.get<std::string>(), base_dir, &bytes);
        if (k.ok()) {
          version_parts.push_back(k->where);
          version_parts.push_back(bytes);
        }
      } else {
        k = LoadKeyPem(name, v.get<std::string>());
      }
      if (!k.ok()) return FieldError(origin, where + "." + field, k.status().message());
      for (const TrustedKey& other : keys) {
        if (other.der == k->der) {
          return FieldError(origin, where,
                            "the same public key as keys." + other.name + " (a threshold counts distinct keys)");
        }
      }
      key_index[name] = keys.size();
      keys.push_back(std::move(*k));
    }
  }

  // rules
  auto rules_it = j.find("rules");
  if (rules_it == j.end()) {
    return Status::InvalidArgument(origin +
                                   ": rules: missing (a Portcullis policy has \"rules\": [...]; a "
                                   "containers-policy.json has \"default\": [...])");
  }
  if (!rules_it->is_array()) return FieldError(origin, "rules", "must be an array, not " + TypeOf(*rules_it));
  std::vector<Rule> rules;
  std::map<std::string, size_t> seen_match;
  for (size_t i = 0; i < rules_it->size(); ++i) {
    const json& rj = (*rules_it)[i];
    const std::string where = "rules[" + std::to_string(i) + "]";
    if (!rj.is_object()) return FieldError(origin, where, "must be an object, not " + TypeOf(rj));
    PC_RETURN_IF_ERROR(CheckFields(origin, where, rj, {"match", "action", "require", "identity", "mode"}));
    Rule r;
    r.index = i;
    auto m = rj.find("match");
    if (m == rj.end()) return FieldError(origin, where, "\"match\" is missing");
    if (!m->is_string()) return FieldError(origin, where + ".match", "must be a string, not " + TypeOf(*m));
    auto pat = NamePattern::Parse(m->get<std::string>());
    if (!pat.ok()) return FieldError(origin, where + ".match", pat.status().message());
    r.match = std::move(*pat);
    if (auto [it, fresh] = seen_match.emplace(r.match.text(), i); !fresh) {
      return FieldError(origin, where + ".match",
                        "\"" + r.match.text() + "\" is already the pattern of rules[" + std::to_string(it->second) +
                            "] (this rule could never apply)");
    }
    const bool has_action = rj.contains("action"), has_require = rj.contains("require");
    if (has_action == has_require) {
      return FieldError(origin, where,
                        has_action ? "\"action\" and \"require\" exclude each other"
                                   : "needs \"action\" (accept or reject) or \"require\"");
    }
    if (has_action) {
      const json& a = rj.at("action");
      if (a == "accept") {
        r.action = Action::kAccept;
      } else if (a == "reject") {
        r.action = Action::kReject;
      } else {
        return FieldError(origin, where + ".action", "must be \"accept\" or \"reject\", not " + a.dump());
      }
    } else {
      r.action = Action::kRequire;
      const json& req = rj.at("require");
      const std::string rw = where + ".require";
      if (!req.is_object()) {
        return FieldError(origin, rw, "must be {\"keys\": [...], \"threshold\": N}, not " + TypeOf(req));
      }
      PC_RETURN_IF_ERROR(CheckFields(origin, rw, req, {"keys", "identities", "threshold"}));
      if (auto ids = req.find("identities"); ids != req.end()) {
        PC_ASSIGN_OR_RETURN(r.identities, ParseIdentities(*ids, origin, rw + ".identities"));
      }
      auto ks = req.find("keys");
      if (ks == req.end() && r.identities.empty()) {
        return FieldError(origin, rw, "needs \"keys\" or \"identities\"");
      }
      static const json kNoKeys = json::array();
      if (ks != req.end() && (!ks->is_array() || ks->empty())) {
        return FieldError(origin, rw + ".keys", "must be a non-empty array of key names");
      }
      const json& key_list = ks != req.end() ? *ks : kNoKeys;
      for (size_t k = 0; k < key_list.size(); ++k) {
        const json& kn = key_list[k];
        const std::string kw = rw + ".keys[" + std::to_string(k) + "]";
        if (!kn.is_string()) return FieldError(origin, kw, "must be a key name, not " + TypeOf(kn));
        auto found = key_index.find(kn.get<std::string>());
        if (found == key_index.end()) {
          std::string defined;
          for (const auto& [n, idx] : key_index) defined += (defined.empty() ? "" : ", ") + n;
          return FieldError(origin, kw,
                            "unknown key \"" + kn.get<std::string>() +
                                "\" (defined in \"keys\": " + (defined.empty() ? "none" : defined) + ")");
        }
        if (std::find(r.keys.begin(), r.keys.end(), found->second) != r.keys.end()) {
          return FieldError(origin, kw, "key \"" + kn.get<std::string>() + "\" is listed twice");
        }
        r.keys.push_back(found->second);
      }
      if (auto t = req.find("threshold"); t != req.end()) {
        if (!t->is_number_integer()) {
          return FieldError(origin, rw + ".threshold", "must be a whole number, not " + t->dump());
        }
        int64_t v = t->get<int64_t>();
        if (v < 1) return FieldError(origin, rw + ".threshold", "must be at least 1, not " + std::to_string(v));
        const size_t signers = r.keys.size() + r.identities.size();
        if (static_cast<uint64_t>(v) > signers) {
          return FieldError(origin, rw + ".threshold",
                            std::to_string(v) + " is more than the " + std::to_string(signers) +
                                (r.identities.empty() ? (signers == 1 ? " listed key" : " listed keys")
                                                      : " listed keys and identities"));
        }
        r.threshold = static_cast<size_t>(v);
      }
    }
    if (auto id = rj.find("identity"); id != rj.end()) {
      if (r.action != Action::kRequire) {
        return FieldError(origin, where + ".identity", "only a rule with \"require\" checks signed identities");
      }
      if (!id->is_string()) return FieldError(origin, where + ".identity", "must be a string, not " + TypeOf(*id));
      auto ip = NamePattern::Parse(id->get<std::string>(), /*allow_digest=*/false);
      if (!ip.ok()) return FieldError(origin, where + ".identity", ip.status().message());
      r.identity = std::move(*ip);
    }
    if (auto mode = rj.find("mode"); mode != rj.end()) {
      if (*mode == "warn") {
        r.warn = true;
      } else if (*mode != "enforce") {
        return FieldError(origin, where + ".mode", "must be \"enforce\" or \"warn\", not " + mode->dump());
      }
    }
    rules.push_back(std::move(r));
  }
  std::stable_sort(rules.begin(), rules.end(), [](const Rule& a, const Rule& b) {
    int c = NamePattern::CompareSpecificity(a.match, b.match);
    return c != 0 ? c < 0 : a.index < b.index;
  });

  DefaultAction def = DefaultAction::kReject;
  if (auto d = j.find("default"); d != j.end()) {
    if (*d == "accept") {
      def = DefaultAction::kAccept;
    } else if (*d == "warn") {
      def = DefaultAction::kWarn;
    } else if (*d != "reject") {
      return FieldError(origin, "default", "must be \"reject\", \"accept\" or \"warn\", not " + d->dump());
    }
  }
  const bool any_require =
      std::any_of(rules.begin(), rules.end(), [](const Rule& r) { return r.action == Action::kRequire; });
  std::string root_where;
  PC_ASSIGN_OR_RETURN(std::shared_ptr<const sigstore::TrustedRoot> root,
                      PolicyTrustedRoot(j, origin, base_dir, any_require, version_parts, root_where));
  return std::shared_ptr<const Policy>(std::make_shared<PortcullisPolicy>(
      origin, VersionOf(version_parts), std::move(keys), std::move(rules), def, std::move(root), root_where));
}

}  // namespace portcullis::verifier::internal
