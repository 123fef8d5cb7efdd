#include "forward/matmul.h"

#include <string>

#include "runtime/thread_pool.h"

#ifdef KTQ_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace ktq {

namespace {

// Rows of A per task of the built-in kernel; fixed, so the arithmetic of each
// output element never depends on the thread count.
constexpr int64_t kRowsPerTask = 16;

[[maybe_unused]] void builtin_matmul(float *c, const float *a, const float *w, int64_t m, int64_t k, int64_t n, ThreadPool &pool) {
    const int64_t tasks = (m + kRowsPerTask - 1) / kRowsPerTask;
    pool.parallel_for(static_cast<size_t>(tasks), [&](size_t t) {
        const int64_t r0 = static_cast<int64_t>(t) * kRowsPerTask;
        const int64_t r1 = std::min(m, r0 + kRowsPerTask);
        for (int64_t j = 0; j < n; ++j) {
            const float *wj = w + j * k;
            for (int64_t i = r0; i < r1; ++i) {
                const float *ai = a + i * k;
                float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
                int64_t p = 0;
                for (; p + 8 <= k; p += 8)
                    for (int q = 0; q < 8; ++q) acc[q] += ai[p + q] * wj[p + q];
                float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
                for (; p < k; ++p) s += ai[p] * wj[p];
                c[i * n + j] = s;
            }
        }
    });
}

}  // namespace

#ifdef KTQ_HAVE_ONEDNN

namespace {

dnnl::engine &cpu_engine() {
    static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
    return eng;
}

}  // namespace

void matmul_abt(float *c, const float *a, const float *w, int64_t m, int64_t k, int64_t n, ThreadPool &pool) {
    if (m == 0 || n == 0) return;
    using dnnl::memory;
    dnnl::engine &eng = cpu_engine();
    const memory::desc a_md({m, k}, memory::data_type::f32, memory::dims{k, 1});
    const memory::desc w_md({k, n}, memory::data_type::f32, memory::dims{1, k});  // W^T, read in place
    const memory::desc c_md({m, n}, memory::data_type::f32, memory::dims{n, 1});
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, w_md, c_md), eng);
    dnnl::stream s(eng);
    dnnl::matmul(pd).execute(s, {{DNNL_ARG_SRC, memory(a_md, eng, const_cast<float *>(a))},
                                 {DNNL_ARG_WEIGHTS, memory(w_md, eng, const_cast<float *>(w))},
                                 {DNNL_ARG_DST, memory(c_md, eng, c)}});
    s.wait();
    (void)pool;
}

const char *matmul_backend() {
    static const std::string name = [] {
        const dnnl_version_t *v = dnnl_version();
        return "onednn " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
    }();
    return name.c_str();
}

#else

void matmul_abt(float *c, const float *a, const float *w, int64_t m, int64_t k, int64_t n, ThreadPool &pool) {
    builtin_matmul(c, a, w, m, k, n, pool);
}

const char *matmul_backend() { return "built-in"; }

#endif

void matmul_abt(float *c, const float *a, const float *w, int64_t m, int64_t k, int64_t n, ThreadPool &pool,
                MatmulBackend *backend, bool keep_weight) {
    if (backend)
        backend->abt(c, a, w, m, k, n, keep_weight);
    else
        matmul_abt(c, a, w, m, k, n, pool);
}

}  // namespace ktq
