// ggml's K-quant block types (Q2_K ... Q6_K), bit-identical to ggml's
// reference quantizers; reached through ggml_traits() like the legacy types.
#pragma once

#include "quant/ggml_blocks.h"

namespace ktq {

// nullptr for types that are not K-quants.
const GgmlTypeTraits *ggml_kquant_traits(ktq_ggml_type type);

}  // namespace ktq
