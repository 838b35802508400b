#include "verifier/sigstore/rekor_body.h"

#include <nlohmann/json.hpp>

#include "verifier/sigstore/crypto.h"
#include "verifier/sigstore/json_util.h"
#include "verifier/strict_json.h"

namespace portcullis::verifier::sigstore {

namespace {

using nlohmann::json;

// A PEM certificate or public key (base64 of the PEM text, as Rekor v1 stores it)
// must be the expected verifier.
Status CheckPemVerifier(const json& obj, std::string_view key, const EntryExpectation& want, const std::string& where) {
  PC_ASSIGN_OR_RETURN(std::string pem, Bytes(obj, key, where));
  std::string der;
  if (want.verifier_is_cert) {
    auto cert = ParseCertPem(pem);
    if (!cert.ok()) return Status::Denied(where + ": the logged verifier is not a PEM certificate");
    PC_ASSIGN_OR_RETURN(der, CertDer(*cert));
  } else {
    auto k = ParsePublicKeyPem(pem);
    if (!k.ok()) return Status::Denied(where + ": the logged verifier is not a PEM public key");
    PC_ASSIGN_OR_RETURN(der, PublicKeyDer(*k));
  }
  if (der != want.verifier_der) return Status::Denied(where + ": the logged certificate/key is not the bundle's");
  return Status::Ok();
}

// Rekor v2 verifier: {"keyDetails", "x509Certificate": {"rawBytes"}} or {"publicKey": {"rawBytes"}}.
Status CheckV2Verifier(const json& sig, const EntryExpectation& want, const std::string& where) {
  PC_ASSIGN_OR_RETURN(const json* v, Object(sig, "verifier", where));
  std::string der;
  if (const json* c = Field(*v, "x509Certificate")) {
    if (!want.verifier_is_cert) return Status::Denied(where + ": the log holds a certificate, the bundle a key");
    PC_ASSIGN_OR_RETURN(der, Bytes(*c, "rawBytes", where + ".verifier.x509Certificate"));
  } else if (const json* k = Field(*v, "publicKey")) {
    if (want.verifier_is_cert) return Status::Denied(where + ": the log holds a key, the bundle a certificate");
    PC_ASSIGN_OR_RETURN(der, Bytes(*k, "rawBytes", where + ".verifier.publicKey"));
  } else {
    return Status::Denied(where + ".verifier has neither x509Certificate nor publicKey");
  }
  if (der != want.verifier_der) return Status::Denied(where + ": the logged certificate/key is not the bundle's");
  return Status::Ok();
}

Status CheckHexHash(const json& obj, std::string_view key, std::string_view want_raw, const std::string& where) {
  PC_ASSIGN_OR_RETURN(const json* h, Object(obj, key, where));
  PC_ASSIGN_OR_RETURN(std::string alg, String(*h, "algorithm", where + "." + std::string(key)));
  PC_ASSIGN_OR_RETURN(std::string value, String(*h, "value", where + "." + std::string(key)));
  if (alg != "sha256") return Status::Unsupported("unsupported: " + where + " hash algorithm " + alg.substr(0, 20));
  if (value != Hex(want_raw)) return Status::Denied(where + "." + std::string(key) + " is not the bundle's");
  return Status::Ok();
}

Status CheckHashedRekordV1(const json& spec, const EntryExpectation& want) {
  PC_ASSIGN_OR_RETURN(const json* data, Object(spec, "data", "hashedrekord"));
  std::string digest = want.is_dsse ? Sha256(DssePae(want.dsse.payload_type, want.dsse.payload)) : want.artifact_sha256;
  Status st = CheckHexHash(*data, "hash", digest, "hashedrekord.data");
  if (!st.ok()) return st.Is(Code::kDenied) ? Status::Denied("the logged artifact hash is not the artifact's") : st;
  PC_ASSIGN_OR_RETURN(const json* sig, Object(spec, "signature", "hashedrekord"));
  PC_ASSIGN_OR_RETURN(std::string content, Bytes(*sig, "content", "hashedrekord.signature"));
  if (content != want.signature) return Status::Denied("the logged signature is not the bundle's");
  PC_ASSIGN_OR_RETURN(const json* pk, Object(*sig, "publicKey", "hashedrekord.signature"));
  return CheckPemVerifier(*pk, "content", want, "hashedrekord.signature.publicKey");
}

Status CheckHashedRekordV2(const json& spec, const EntryExpectation& want) {
  PC_ASSIGN_OR_RETURN(const json* h, Object(spec, "hashedRekordV002", "hashedrekord"));
  PC_ASSIGN_OR_RETURN(const json* data, Object(*h, "data", "hashedRekordV002"));
  auto alg = String(*data, "algorithm", "hashedRekordV002.data");
  if (!alg.ok()) return alg.status();
  if (*alg != "SHA2_256") {
    return Status::Unsupported("unsupported: hashedRekordV002 digest algorithm " + alg->substr(0, 20));
  }
  PC_ASSIGN_OR_RETURN(std::string digest, Bytes(*data, "digest", "hashedRekordV002.data"));
  std::string want_digest =
      want.is_dsse ? Sha256(DssePae(want.dsse.payload_type, want.dsse.payload)) : want.artifact_sha256;
  if (digest != want_digest) return Status::Denied("the logged artifact hash is not the artifact's");
  PC_ASSIGN_OR_RETURN(const json* sig, Object(*h, "signature", "hashedRekordV002"));
  PC_ASSIGN_OR_RETURN(std::string content, Bytes(*sig, "content", "hashedRekordV002.signature"));
  if (content != want.signature) return Status::Denied("the logged signature is not the bundle's");
  return CheckV2Verifier(*sig, want, "hashedRekordV002.signature");
}

Status CheckDsseV1(const json& spec, const EntryExpectation& want) {
  if (!want.is_dsse) return Status::Denied("a dsse log entry for a message-signature bundle");
  PC_RETURN_IF_ERROR(CheckHexHash(spec, "payloadHash", Sha256(want.dsse.payload), "dsse"));
  const json* sigs = Field(spec, "signatures");
  if (sigs == nullptr || !sigs->is_array() || sigs->size() != 1) {
    return Status::Denied("the dsse log entry must hold exactly the bundle's one signature");
  }
  PC_ASSIGN_OR_RETURN(std::string content, Bytes((*sigs)[0], "signature", "dsse.signatures[0]"));
  if (content != want.signature) return Status::Denied("the logged DSSE signature is not the envelope's");
  return CheckPemVerifier((*sigs)[0], "verifier", want, "dsse.signatures[0]");
}

Status CheckDsseV2(const json& spec, const EntryExpectation& want) {
  if (!want.is_dsse) return Status::Denied("a dsse log entry for a message-signature bundle");
  PC_ASSIGN_OR_RETURN(const json* d, Object(spec, "dsseV002", "dsse"));
  PC_ASSIGN_OR_RETURN(const json* ph, Object(*d, "payloadHash", "dsseV002"));
  auto alg = String(*ph, "algorithm", "dsseV002.payloadHash");
  if (!alg.ok()) return alg.status();
  PC_ASSIGN_OR_RETURN(std::string digest, Bytes(*ph, "digest", "dsseV002.payloadHash"));
  if (*alg != "SHA2_256" || digest != Sha256(want.dsse.payload)) {
    return Status::Denied("the logged DSSE payload hash is not the envelope's");
  }
  const json* sigs = Field(*d, "signatures");
  if (sigs == nullptr || !sigs->is_array() || sigs->size() != 1) {
    return Status::Denied("the dsse log entry must hold exactly the bundle's one signature");
  }
  PC_ASSIGN_OR_RETURN(std::string content, Bytes((*sigs)[0], "content", "dsseV002.signatures[0]"));
  if (content != want.signature) return Status::Denied("the logged DSSE signature is not the envelope's");
  return CheckV2Verifier((*sigs)[0], want, "dsseV002.signatures[0]");
}

// intoto 0.0.2 stores the envelope with payload, signatures and keys base64'd once more.
Status CheckIntotoV2(const json& spec, const EntryExpectation& want) {
  if (!want.is_dsse) return Status::Denied("an intoto log entry for a message-signature bundle");
  PC_ASSIGN_OR_RETURN(const json* content, Object(spec, "content", "intoto"));
  PC_RETURN_IF_ERROR(CheckHexHash(*content, "payloadHash", Sha256(want.dsse.payload), "intoto.content"));
  PC_ASSIGN_OR_RETURN(const json* env, Object(*content, "envelope", "intoto.content"));
  PC_ASSIGN_OR_RETURN(std::string type, String(*env, "payloadType", "intoto.envelope"));
  if (type != want.dsse.payload_type) return Status::Denied("the logged payload type is not the envelope's");
  if (Field(*env, "payload") != nullptr) {
    PC_ASSIGN_OR_RETURN(std::string p1, Bytes(*env, "payload", "intoto.envelope"));
    PC_ASSIGN_OR_RETURN(std::string payload, DecodeBase64(p1, "intoto.envelope.payload"));
    if (payload != want.dsse.payload) return Status::Denied("the logged payload is not the envelope's");
  }
  const json* sigs = Field(*env, "signatures");
  if (sigs == nullptr || !sigs->is_array() || sigs->size() != 1) {
    return Status::Denied("the intoto log entry must hold exactly the bundle's one signature");
  }
  PC_ASSIGN_OR_RETURN(std::string s1, Bytes((*sigs)[0], "sig", "intoto.envelope.signatures[0]"));
  PC_ASSIGN_OR_RETURN(std::string sig, DecodeBase64(s1, "intoto.envelope.signatures[0].sig"));
  if (sig != want.signature) return Status::Denied("the logged DSSE signature is not the envelope's");
  return CheckPemVerifier((*sigs)[0], "publicKey", want, "intoto.envelope.signatures[0]");
}

Status CheckImpl(const TlogEntry& entry, const EntryExpectation& want) {
  if (entry.body.size() > kMaxBundleBytes) return Status::Denied("log entry body is too large");
  auto parsed = ParseStrictJson(entry.body);
  if (!parsed.ok()) return Status::Denied("log entry body: " + parsed.status().message());
  const json& body = *parsed;
  PC_ASSIGN_OR_RETURN(std::string kind, String(body, "kind", "log entry body"));
  PC_ASSIGN_OR_RETURN(std::string api, String(body, "apiVersion", "log entry body"));
  if (kind != entry.kind || api != entry.version) {
    return Status::Denied("log entry body is " + kind.substr(0, 40) + " " + api.substr(0, 20) + ", the bundle says " +
                          entry.kind.substr(0, 40) + " " + entry.version.substr(0, 20));
  }
  PC_ASSIGN_OR_RETURN(const json* spec, Object(body, "spec", "log entry body"));
  if (kind == "hashedrekord" && api == "0.0.1") return CheckHashedRekordV1(*spec, want);
  if (kind == "hashedrekord" && api == "0.0.2") return CheckHashedRekordV2(*spec, want);
  if (kind == "dsse" && api == "0.0.1") return CheckDsseV1(*spec, want);
  if (kind == "dsse" && api == "0.0.2") return CheckDsseV2(*spec, want);
  if (kind == "intoto" && api == "0.0.2") return CheckIntotoV2(*spec, want);
  return Status::Unsupported("unsupported: log entry kind " + kind.substr(0, 40) + " " + api.substr(0, 20));
}

}  // namespace

std::string DssePae(const std::string& payload_type, const std::string& payload) {
  return "DSSEv1 " + std::to_string(payload_type.size()) + " " + payload_type + " " + std::to_string(payload.size()) +
         " " + payload;
}

Status CheckEntryBody(const TlogEntry& entry, const EntryExpectation& want) {
  try {
    Status st = CheckImpl(entry, want);
    if (st.Is(Code::kInvalidArgument)) return Status::Denied("log entry body: " + st.message());
    return st;
  } catch (const std::exception& e) {
    return Status::Denied(std::string("log entry body is malformed: ") + e.what());
  }
}

}  // namespace portcullis::verifier::sigstore
