// Tests for proxy/store.h against corrupt records written straight into
// RocksDB (a damaged disk, a bug, an operator's tool): every one is an
// IO_ERROR or is dropped, never an exception or a crash (review L9, M4).
// Also: the data dir Open creates is private (review L7).
#include <doctest/doctest.h>
#include <rocksdb/db.h>
#include <sys/stat.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "proxy/store.h"
#include "proxy/store_test_util.h"
#include "tests/test_util.h"

namespace {

using portcullis::Code;
using portcullis::oci::Digest;
using portcullis::proxy::Store;
using portcullis::proxy::TagRecord;
using portcullis::testing::TempDir;

using portcullis::proxy::testing::OpenStore;

// Opens the closed store's database directly and runs `fn` on one column family.
template <typename Fn>
void WithRaw(const std::string& dir, const std::string& family, Fn fn) {
  std::vector<std::string> names;
  REQUIRE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir, &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  for (const auto& n : names) cfs.emplace_back(n, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  REQUIRE(rocksdb::DB::Open(rocksdb::DBOptions(), dir, cfs, &handles, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::ColumnFamilyHandle* h = nullptr;
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == family) h = handles[i];
  }
  REQUIRE(h != nullptr);
  fn(db.get(), h);
  for (auto* x : handles) db->DestroyColumnFamilyHandle(x);
  REQUIRE(db->Close().ok());
}

}  // namespace

TEST_CASE("proxy: store refuses corrupt tag records with IO_ERROR, not an exception") {
  TempDir dir;
  const std::string digest = Digest::Sha256Of("x").ToString();
  const std::vector<std::string> bad = {
      digest + " 99999999999999999999999",  // std::stoll threw out_of_range
      digest + " abc",                      // std::stoll threw invalid_argument
      digest + " ",                         // ditto
      digest + " 12abc",                    // std::stoll read 12 and ignored the rest
      "sha256:zz 5",
      "nospace",
  };
  {
    auto st = OpenStore(dir.str());
    REQUIRE(st->PutTag("good", TagRecord{Digest::Sha256Of("x"), 1700000000}).ok());
  }
  WithRaw(dir.str(), "tags", [&](rocksdb::DB* db, rocksdb::ColumnFamilyHandle* h) {
    for (size_t i = 0; i < bad.size(); ++i) {
      REQUIRE(db->Put(rocksdb::WriteOptions(), h, "bad" + std::to_string(i), bad[i]).ok());
    }
  });
  auto st = OpenStore(dir.str());
  auto good = st->GetTag("good");
  REQUIRE(good.ok());
  REQUIRE(good->has_value());
  CHECK((*good)->fetched_at == 1700000000);
  for (size_t i = 0; i < bad.size(); ++i) {
    CAPTURE(bad[i]);
    portcullis::StatusOr<std::optional<TagRecord>> r = portcullis::Status::Internal("not run");
    REQUIRE_NOTHROW(r = st->GetTag("bad" + std::to_string(i)));
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == Code::kIoError);
  }
}

TEST_CASE("proxy: store refuses a blob record with chunk size 0 (readers divide by it) or a storage byte it does not know") {
  TempDir dir;
  const std::string body = "hello, corrupt world";
  const Digest d = Digest::Sha256Of(body);
  const Digest odd = Digest::Sha256Of("odd storage byte");
  {
    auto st = OpenStore(dir.str());
    for (const Digest& x : {d, odd}) {
      REQUIRE(st->BeginBlob(x, 4096).ok());
      REQUIRE(st->CommitBlob(x, 0, body, body.size(), 4096).ok());
    }
    auto m = st->GetBlobMeta(d);
    REQUIRE(m.ok());
    REQUIRE(m->has_value());
    CHECK((*m)->chunk_bytes == 4096);
  }
  WithRaw(dir.str(), "blob_meta", [&](rocksdb::DB* db, rocksdb::ColumnFamilyHandle* h) {
    std::string v;
    REQUIRE(db->Get(rocksdb::ReadOptions(), h, d.ToString(), &v).ok());
    REQUIRE(v.size() == 26);        // 'C', size, chunk_bytes, created (8 bytes each), 'F' (a file)
    v.replace(9, 8, 8, '\0');       // chunk_bytes = 0
    REQUIRE(db->Put(rocksdb::WriteOptions(), h, d.ToString(), v).ok());
    REQUIRE(db->Get(rocksdb::ReadOptions(), h, odd.ToString(), &v).ok());
    v[25] = 'X';
    REQUIRE(db->Put(rocksdb::WriteOptions(), h, odd.ToString(), v).ok());
  });
  {
    int cleaned = -1;
    auto st = OpenStore(dir.str(), &cleaned);
    CHECK(cleaned == 2);  // Open treats an unreadable record as pending and drops it, file and all
    for (const Digest& x : {d, odd}) {
      auto m = st->GetBlobMeta(x);
      REQUIRE(m.ok());
      CHECK_FALSE(m->has_value());
      CHECK_FALSE(std::filesystem::exists(dir.str() + "/blobs/sha256/" + x.hex().substr(0, 2) + "/" + x.hex()));
    }
    CHECK(st->Stats().blobs == 0);
  }
}

TEST_CASE("proxy: store creates its data dir 0700") {
  TempDir parent;
  const std::string dir = (parent.path / "data").string();
  { auto st = OpenStore(dir); }
  struct stat sb {};
  REQUIRE(::stat(dir.c_str(), &sb) == 0);
  CHECK((sb.st_mode & 0777) == 0700);
  // An existing dir keeps the permissions its operator gave it.
  const std::string shared = (parent.path / "shared").string();
  std::filesystem::create_directories(shared);
  std::filesystem::permissions(shared, std::filesystem::perms(0750));
  { auto st = OpenStore(shared); }
  REQUIRE(::stat(shared.c_str(), &sb) == 0);
  CHECK((sb.st_mode & 0777) == 0750);
}
