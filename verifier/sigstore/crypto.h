// OpenSSL helpers for the Sigstore verifier: owned handles, DER/PEM parsing of
// keys and certificates, hashing, signature checks, base64 and RFC 3339 times.
//
// Contract: every function takes untrusted bytes and reports problems as a
// Status (never throws, never aborts); handles are shared_ptr with the matching
// OpenSSL free function so the value types that hold them can be copied.
// Signature checks return DENIED "... does not verify" on a bad signature.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "oci/status.h"

struct evp_pkey_st;
struct x509_st;

namespace portcullis::verifier::sigstore {

using PKey = std::shared_ptr<evp_pkey_st>;
using Cert = std::shared_ptr<x509_st>;

// SubjectPublicKeyInfo DER; with `allow_pkcs1_rsa` also a PKCS#1 RSAPublicKey
// (the trusted root's PKCS1_RSA_PKCS1V5 keys). Trailing bytes are an error.
StatusOr<PKey> ParsePublicKeyDer(std::string_view der, bool allow_pkcs1_rsa = false);
// The first PEM "PUBLIC KEY" block.
StatusOr<PKey> ParsePublicKeyPem(std::string_view pem);
// SubjectPublicKeyInfo DER of a key.
StatusOr<std::string> PublicKeyDer(const PKey& key);

// One DER certificate; trailing bytes are an error.
StatusOr<Cert> ParseCertDer(std::string_view der);
// The first PEM "CERTIFICATE" block.
StatusOr<Cert> ParseCertPem(std::string_view pem);
StatusOr<std::string> CertDer(const Cert& cert);
// Every PEM "CERTIFICATE" block of `pem`, in order (other PEM blocks and text
// around them are skipped). INVALID_ARGUMENT when a CERTIFICATE block does not
// parse or there are more than `max` of them; an empty vector when there is none.
StatusOr<std::vector<Cert>> ParseCertsPem(std::string_view pem, size_t max = 64);

// Raw digests (32 / 48 / 64 bytes).
std::string Sha256(std::string_view data);
std::string Sha384(std::string_view data);
std::string Sha512(std::string_view data);
std::string Hex(std::string_view bytes);

// The hash a key signs with in Sigstore: "sha256" for P-256 and RSA, "sha384"
// for P-384, "sha512" for P-521, "" for Ed25519 (pure, over the message).
// UNSUPPORTED for other key types.
StatusOr<std::string> HashNameFor(const PKey& key);

// `signature` over `message` with the key's Sigstore scheme (HashNameFor).
Status VerifySignature(const PKey& key, std::string_view message, std::string_view signature);
// `signature` over a message whose `hash_name` digest is `digest` (ECDSA, RSA
// PKCS#1 v1.5); UNSUPPORTED for Ed25519 (it needs the message itself).
Status VerifyPrehashed(const PKey& key, std::string_view hash_name, std::string_view digest,
                       std::string_view signature);

// Standard base64 (padding optional); INVALID_ARGUMENT naming `what` otherwise.
StatusOr<std::string> DecodeBase64(std::string_view s, std::string_view what);

// RFC 3339 UTC or offset time ("2021-01-12T11:53:27.000Z") to Unix seconds
// (fractions dropped).
StatusOr<int64_t> ParseRfc3339(std::string_view s);
// "2024-03-19T17:26:26Z" for messages.
std::string FormatTime(int64_t unix_seconds);

// The last OpenSSL error as text (and the error queue cleared).
std::string OpenSslError();

}  // namespace portcullis::verifier::sigstore
