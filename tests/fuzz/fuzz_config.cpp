// libFuzzer target: config.json text, both hub styles and nested text_config.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "reading/architecture.h"
#include "reading/model_config.h"
#include "runtime/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    try {
        auto c = ktq::ModelConfig::parse(std::string(reinterpret_cast<const char *>(data), size), "config.json");
        if (c.num_layers < 0 || c.num_experts < 0 || c.quantization.block_rows < 0) std::abort();
        (void)ktq::family_from_model_type(c.model_type);
    } catch (const ktq::Error &) {
    }
    return 0;
}
