// The proxy's JSON config file (config/config.h): Parse, then the cross-field
// checks of Finalize, as `portcullis serve` and `config check` run them.
#include <cstddef>
#include <cstdint>
#include <string>

#include "config/config.h"

using namespace portcullis;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto cfg = config::Parse(text, "fuzz.json");
  if (cfg.ok()) (void)config::Finalize(&*cfg);
  return 0;
}
