#include <cuda_runtime.h>

#include <string>

#include "cuda/cuda_support.h"
#include "cuda/ct_rtn_cuda.h"
#include "quant/ct_rtn_math.h"
#include "reading/dtype.h"
#include "runtime/error.h"

namespace ktq {

namespace {

namespace m = ct::math;

using ktq::cuda::check;

struct KernelArgs {
    const void *w;
    bool w_bf16;
    int64_t rows, cols, glen, groups, words;
    int dtype, bits;
    bool symmetric, dtype_rounding, mse;
    float *scale_f;  // per group, the scale as float (a value of the dtype)
    float *zp_f;     // per group, the zero point
    unsigned long long *non_finite;
};

__device__ __forceinline__ float load(const KernelArgs &a, int64_t i) {
    return a.w_bf16 ? m::from_bf16(static_cast<const uint16_t *>(a.w)[i]) : static_cast<const float *>(a.w)[i];
}

// One group's weights as floats, for the MSE search.
struct GroupWeights {
    const KernelArgs *a;
    int64_t x0;
    __device__ float operator[](int k) const { return load(*a, x0 + k); }
};

// One thread per (row, group): min/max, scale and zero point.
__global__ void group_params_kernel(KernelArgs a, void *scales_out, int8_t *zp_out) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= a.rows * a.groups) return;
    const int64_t r = i / a.groups, g = i % a.groups;
    const int64_t x0 = r * a.cols + g * a.glen;
    float lo = load(a, x0), hi = lo;
    unsigned long long bad = 0;
    for (int64_t k = 0; k < a.glen; ++k) {
        const float v = load(a, x0 + k);
        if (!isfinite(v)) ++bad;
        lo = fminf(lo, v);
        hi = fmaxf(hi, v);
    }
    if (bad) atomicAdd(a.non_finite, bad);
    const m::GroupParams p =
        a.mse ? m::mse_group_params(a.dtype, a.bits, a.symmetric, a.dtype_rounding, GroupWeights{&a, x0},
                                    static_cast<int>(a.glen), lo, hi)
              : m::group_params(a.dtype, a.bits, a.symmetric, lo, hi);
    a.scale_f[i] = p.scale;
    a.zp_f[i] = p.zp;
    if (a.dtype == m::kF32)
        static_cast<float *>(scales_out)[i] = p.scale;
    else
        static_cast<uint16_t *>(scales_out)[i] = a.dtype == m::kBF16 ? m::bf16_bits(p.scale) : m::f16_bits(p.scale);
    if (zp_out) zp_out[i] = static_cast<int8_t>(p.zp);
}

// One thread per packed word: the codes whose bits fall into it.
__global__ void pack_kernel(KernelArgs a, uint32_t *packed) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= a.rows * a.words) return;
    const int64_t r = i / a.words, word = i % a.words;
    const int64_t bit0 = word * 32;
    const int64_t first = bit0 / a.bits, last = min((bit0 + 31) / a.bits, a.cols - 1);
    const uint32_t offset = 1u << (a.bits - 1);
    uint32_t out = 0;
    for (int64_t e = first; e <= last; ++e) {
        const int64_t g = r * a.groups + e / a.glen;
        const m::GroupParams p{a.scale_f[g], a.zp_f[g]};
        const uint32_t u = static_cast<uint32_t>(m::code_of(a.dtype, a.bits, load(a, r * a.cols + e), p, a.dtype_rounding) + static_cast<int>(offset));
        const int64_t shift = e * a.bits - bit0;  // negative: the value began in the previous word
        out |= shift >= 0 ? u << shift : u >> (-shift);
    }
    packed[i] = out;
}

// Device buffers of one host thread, grown as needed, with its own stream.
struct DeviceBuffers {
    cudaStream_t stream = nullptr;
    void *mem = nullptr;
    size_t bytes = 0;
    ~DeviceBuffers() {
        if (mem) cudaFree(mem);
        if (stream) cudaStreamDestroy(stream);
    }
    char *get(size_t need) {
        if (!stream) check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
        if (need > bytes) {
            if (mem) cudaFree(mem);
            mem = nullptr;
            bytes = 0;
            check(cudaMalloc(&mem, need), "cudaMalloc");
            bytes = need;
        }
        return static_cast<char *>(mem);
    }
};

size_t align256(size_t n) { return (n + 255) & ~size_t(255); }

}  // namespace

uint64_t cuda_ct_quantize_rows(const ct::Scheme &s, const void *w, bool w_is_bf16, uint64_t rows, uint64_t cols,
                               uint32_t *packed, void *scales, int8_t *zp) {
    thread_local DeviceBuffers buf;
    const uint64_t groups = ct::groups_per_row(s, cols), words = ct::packed_words_per_row(s, cols);
    const size_t n = rows * cols, ng = rows * groups, scale_size = dtype_size(s.dtype);
    const size_t in_size = w_is_bf16 ? 2 : 4;
    const size_t o_w = 0, o_packed = o_w + align256(n * in_size), o_scale = o_packed + align256(rows * words * 4);
    const size_t o_sf = o_scale + align256(ng * scale_size), o_zf = o_sf + align256(ng * 4);
    const size_t o_zp = o_zf + align256(ng * 4), o_bad = o_zp + align256(ng), total = o_bad + 256;
    char *d = buf.get(total);
    KernelArgs a{};
    a.w = d + o_w;
    a.w_bf16 = w_is_bf16;
    a.rows = static_cast<int64_t>(rows);
    a.cols = static_cast<int64_t>(cols);
    a.groups = static_cast<int64_t>(groups);
    a.glen = static_cast<int64_t>(cols / groups);
    a.words = static_cast<int64_t>(words);
    a.dtype = s.dtype == KTQ_DTYPE_BF16 ? m::kBF16 : s.dtype == KTQ_DTYPE_F16 ? m::kF16 : m::kF32;
    a.bits = s.bits;
    a.symmetric = s.symmetric;
    a.dtype_rounding = s.dtype_rounding;
    a.mse = s.observer == ct::Observer::kMse;
    a.scale_f = reinterpret_cast<float *>(d + o_sf);
    a.zp_f = reinterpret_cast<float *>(d + o_zf);
    a.non_finite = reinterpret_cast<unsigned long long *>(d + o_bad);
    cudaStream_t st = buf.stream;
    check(cudaMemcpyAsync(d + o_w, w, n * in_size, cudaMemcpyHostToDevice, st), "copy to device");
    check(cudaMemsetAsync(d + o_bad, 0, 8, st), "cudaMemset");
    const int threads = 256;
    int8_t *d_zp = zp ? reinterpret_cast<int8_t *>(d + o_zp) : nullptr;
    group_params_kernel<<<static_cast<unsigned>((ng + threads - 1) / threads), threads, 0, st>>>(a, d + o_scale, d_zp);
    check(cudaGetLastError(), "kernel launch");
    pack_kernel<<<static_cast<unsigned>((rows * words + threads - 1) / threads), threads, 0, st>>>(
        a, reinterpret_cast<uint32_t *>(d + o_packed));
    check(cudaGetLastError(), "kernel launch");
    unsigned long long bad = 0;
    check(cudaMemcpyAsync(packed, d + o_packed, rows * words * 4, cudaMemcpyDeviceToHost, st), "copy to host");
    check(cudaMemcpyAsync(scales, d + o_scale, ng * scale_size, cudaMemcpyDeviceToHost, st), "copy to host");
    if (zp) check(cudaMemcpyAsync(zp, d_zp, ng, cudaMemcpyDeviceToHost, st), "copy to host");
    check(cudaMemcpyAsync(&bad, d + o_bad, 8, cudaMemcpyDeviceToHost, st), "copy to host");
    check(cudaStreamSynchronize(st), "kernel");
    return bad;
}

}  // namespace ktq
