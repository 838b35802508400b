#include "verifier/sigstore/timestamp.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ts.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <ctime>
#include <memory>
#include <string>

#include "verifier/sigstore/crypto.h"

namespace portcullis::verifier::sigstore {

namespace {

struct RespFree {
  void operator()(TS_RESP* r) const { TS_RESP_free(r); }
};
struct VerifyCtxFree {
  void operator()(TS_VERIFY_CTX* c) const { TS_VERIFY_CTX_free(c); }
};

// Verifies `resp` against one TSA; OK or the OpenSSL reason.
Status VerifyWithAuthority(TS_RESP* resp, std::string_view signed_data, const CertAuthority& tsa, int64_t gen_time) {
  std::unique_ptr<TS_VERIFY_CTX, VerifyCtxFree> ctx(TS_VERIFY_CTX_new());
  if (!ctx) return Status::Internal("TS_VERIFY_CTX_new failed");
  // The context owns the store, the certificate stack and the data BIO.
  X509_STORE* store = X509_STORE_new();
  if (store == nullptr) return Status::Internal("X509_STORE_new failed");
  TS_VERIFY_CTX_set_store(ctx.get(), store);
  if (X509_STORE_add_cert(store, tsa.chain.back().get()) != 1) return Status::Internal("X509_STORE_add_cert failed");
  X509_VERIFY_PARAM_set_time(X509_STORE_get0_param(store), static_cast<time_t>(gen_time));
  STACK_OF(X509)* untrusted = sk_X509_new_null();
  if (untrusted == nullptr) return Status::Internal("sk_X509_new_null failed");
  TS_VERIFY_CTS_set_certs(ctx.get(), untrusted);
  for (size_t i = 0; i + 1 < tsa.chain.size(); ++i) {
    if (X509_up_ref(tsa.chain[i].get()) != 1) return Status::Internal("X509_up_ref failed");
    if (sk_X509_push(untrusted, tsa.chain[i].get()) <= 0) {
      X509_free(tsa.chain[i].get());
      return Status::Internal("sk_X509_push failed");
    }
  }
  BIO* data = BIO_new_mem_buf(signed_data.data(), static_cast<int>(signed_data.size()));
  if (data == nullptr) return Status::Internal("BIO_new_mem_buf failed");
  TS_VERIFY_CTX_set_data(ctx.get(), data);
  TS_VERIFY_CTX_set_flags(ctx.get(), TS_VFY_VERSION | TS_VFY_SIGNATURE | TS_VFY_DATA);
  if (TS_RESP_verify_response(ctx.get(), resp) != 1) return Status::Denied(OpenSslError());
  ERR_clear_error();
  return Status::Ok();
}

}  // namespace

StatusOr<int64_t> VerifyRfc3161(std::string_view timestamp_der, std::string_view signed_data, const TrustedRoot& root) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(timestamp_der.data());
  std::unique_ptr<TS_RESP, RespFree> resp(d2i_TS_RESP(nullptr, &p, static_cast<long>(timestamp_der.size())));
  if (!resp || p != reinterpret_cast<const unsigned char*>(timestamp_der.data()) + timestamp_der.size()) {
    ERR_clear_error();
    return Status::Denied("RFC 3161 timestamp is not a DER TimeStampResp");
  }
  TS_TST_INFO* info = TS_RESP_get_tst_info(resp.get());
  if (info == nullptr) return Status::Denied("RFC 3161 timestamp carries no token");
  const ASN1_GENERALIZEDTIME* gt = TS_TST_INFO_get_time(info);
  std::tm tm{};
  if (gt == nullptr || ASN1_TIME_to_tm(gt, &tm) != 1) {
    ERR_clear_error();
    return Status::Denied("RFC 3161 timestamp has no valid genTime");
  }
  int64_t gen_time = static_cast<int64_t>(timegm(&tm));
  std::string last = "no trusted timestamp authority is valid at " + FormatTime(gen_time);
  for (const auto& tsa : root.timestamp_authorities) {
    if (!tsa.valid_for.Contains(gen_time)) continue;
    Status st = VerifyWithAuthority(resp.get(), signed_data, tsa, gen_time);
    if (st.ok()) return gen_time;
    last = st.message();
  }
  return Status::Denied("RFC 3161 timestamp does not verify: " + last);
}

}  // namespace portcullis::verifier::sigstore
