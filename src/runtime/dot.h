// Dot product in float32 with eight independent partial sums, joined in a
// fixed order: the compiler vectorizes it (one running sum cannot be
// reordered), and the result never depends on where it runs.
#pragma once

#include <cstdint>

namespace ktq {

inline float dot8(const float *a, const float *b, int64_t n) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int q = 0; q < 8; ++q) acc[q] += a[i + q] * b[i + q];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

}  // namespace ktq
