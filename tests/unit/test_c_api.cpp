// The C ABI's conventions and the writer's guarantees: NULL handling,
// versioned options, per-call errors, cancellation, state errors, crash-safe
// output, determinism across thread counts and layer orders.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <csignal>
#include <thread>
#include <cstring>

#include "ktq/ktq.h"
#include "test_support.h"

using namespace ktq_test;

namespace {

ktq_model *open_shared(const char *name) {
    std::string path = shared_model(name);
    if (path.empty()) return nullptr;
    ktq_model *m = nullptr;
    EXPECT_EQ(ktq_open_model(&m, path.c_str(), nullptr, nullptr), KTQ_OK);
    return m;
}

// Converts `model` into `out` with the given threads and shard size.
int convert(ktq_model *model, const std::string &out, int threads, uint64_t shard_bytes, std::string *message = nullptr) {
    ktq_writer_options wo;
    ktq_writer_options_init(&wo, KTQ_WRITER_OPTIONS_VERSION);
    wo.max_shard_bytes = shard_bytes;
    ktq_writer *w = nullptr;
    ktq_error *err = nullptr;
    int st = ktq_writer_open(&w, model, out.c_str(), KTQ_FORMAT_HF_BF16, &wo, &err);
    if (st == KTQ_OK) {
        ktq_quantize_options qo;
        ktq_quantize_options_init(&qo, KTQ_QUANTIZE_OPTIONS_VERSION);
        qo.threads = threads;
        st = ktq_write(model, &qo, w, &err);
    }
    if (message) *message = err ? ktq_error_message(err) : "";
    ktq_error_free(err);
    ktq_writer_free(w);
    return st;
}

std::string folder_bytes(const std::string &dir) {
    std::string all;
    for (const auto &name : list_dir(dir)) all += name + "\n" + read_file(dir + "/" + name);
    return all;
}

}  // namespace

TEST(CApi, VersionAndStatusStrings) {
    EXPECT_EQ(ktq_version_number(), static_cast<unsigned>(KTQ_VERSION_NUMBER));
    EXPECT_STREQ(ktq_version(), KTQ_VERSION_STRING);
    for (int s = 0; s >= KTQ_ERR_INTERNAL; --s) {
        EXPECT_NE(ktq_status_str(s), nullptr);
        EXPECT_STRNE(ktq_status_str(s), "unknown status") << s;
        EXPECT_EQ(ktq_is_error(s), s != 0);
    }
    EXPECT_STREQ(ktq_status_str(12345), "unknown status");
}

TEST(CApi, FreeNullIsANoOp) {
    ktq_model_free(nullptr);
    ktq_writer_free(nullptr);
    ktq_error_free(nullptr);
}

TEST(CApi, NullArgumentsAndOutParamsOnFailure) {
    ktq_model *m = reinterpret_cast<ktq_model *>(0x1);
    ktq_error *err = nullptr;
    EXPECT_EQ(ktq_open_model(&m, nullptr, nullptr, &err), KTQ_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(m, nullptr);
    ASSERT_NE(err, nullptr);
    EXPECT_EQ(ktq_error_status(err), KTQ_ERR_INVALID_ARGUMENT);
    ktq_error_free(err);
    EXPECT_EQ(ktq_open_model(nullptr, "x", nullptr, nullptr), KTQ_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(ktq_open_model(&m, "/nonexistent/ktq-model", nullptr, &err), KTQ_ERR_NOT_FOUND);
    EXPECT_NE(std::string(ktq_error_message(err)).find("/nonexistent/ktq-model"), std::string::npos);
    ktq_error_free(err);
}

TEST(CApi, OptionStructVersionsAreChecked) {
    ktq_open_options o;
    EXPECT_EQ(ktq_open_options_init(&o, 99), KTQ_ERR_VERSION);
    ASSERT_EQ(ktq_open_options_init(&o, KTQ_OPEN_OPTIONS_VERSION), KTQ_OK);
    o.version = 99;
    ktq_model *m = nullptr;
    ktq_error *err = nullptr;
    EXPECT_EQ(ktq_open_model(&m, ".", &o, &err), KTQ_ERR_VERSION);
    EXPECT_NE(std::string(ktq_error_message(err)).find("ktq_open_options"), std::string::npos);
    ktq_error_free(err);
    ktq_model_info info;
    std::memset(&info, 0, sizeof info);  // version 0: not initialised
    EXPECT_EQ(ktq_model_get_info(&info, reinterpret_cast<ktq_model *>(&info), nullptr), KTQ_ERR_VERSION);
}

TEST(CApi, SystemInfo) {
    ktq_system_info s;
    ASSERT_EQ(ktq_system_info_init(&s, KTQ_SYSTEM_INFO_VERSION), KTQ_OK);
    ASSERT_EQ(ktq_system_get_info(&s, nullptr), KTQ_OK);
    EXPECT_GE(s.numa_nodes, 1);
    EXPECT_GE(s.cores, 1);
    EXPECT_GE(s.pus, s.cores);
    int total = 0;
    for (int n = 0; n < s.numa_nodes; ++n) total += ktq_system_numa_cores(n);
    EXPECT_EQ(total, s.cores);
    EXPECT_EQ(ktq_system_numa_cores(s.numa_nodes), KTQ_ERR_NOT_FOUND);
}

TEST(Writer, SameBytesWhateverTheThreadCountAndShardSize) {
    ktq_model *m = open_shared("tiny-deepseek-v3-fp8");
    if (!m) GTEST_SKIP() << "shared test models not found";
    TempDir a, b, c;
    ASSERT_EQ(convert(m, a.path(), 1, 0), KTQ_OK);
    ASSERT_EQ(convert(m, b.path(), 3, 0), KTQ_OK);
    EXPECT_EQ(folder_bytes(a.path()), folder_bytes(b.path()));
    ASSERT_EQ(convert(m, c.path(), 2, 2u << 20), KTQ_OK);
    auto files = list_dir(c.path());
    EXPECT_NE(std::find(files.begin(), files.end(), "model.safetensors.index.json"), files.end());
    EXPECT_NE(std::find(files.begin(), files.end(), "model-00001-of-00011.safetensors"), files.end());
    // The sharded output reads back to the same tensors as the single file.
    ktq_model *ma = nullptr, *mc = nullptr;
    ASSERT_EQ(ktq_open_model(&ma, a.path().c_str(), nullptr, nullptr), KTQ_OK);
    ASSERT_EQ(ktq_open_model(&mc, c.path().c_str(), nullptr, nullptr), KTQ_OK);
    ASSERT_EQ(ktq_model_tensor_count(ma), ktq_model_tensor_count(mc));
    for (size_t i = 0; i < ktq_model_tensor_count(ma); ++i) {
        ktq_tensor_info ti;
        ktq_tensor_info_init(&ti, KTQ_TENSOR_INFO_VERSION);
        ASSERT_EQ(ktq_model_tensor_info(&ti, ma, i, nullptr), KTQ_OK);
        EXPECT_EQ(ti.dtype, KTQ_DTYPE_BF16) << ti.name;
        std::vector<uint16_t> x(ti.nbytes / 2), y(ti.nbytes / 2);
        ASSERT_EQ(ktq_model_read_tensor(x.data(), ti.nbytes, ma, ti.name, KTQ_DTYPE_BF16, nullptr), KTQ_OK);
        ASSERT_EQ(ktq_model_read_tensor(y.data(), ti.nbytes, mc, ti.name, KTQ_DTYPE_BF16, nullptr), KTQ_OK);
        ASSERT_EQ(x, y) << ti.name;
    }
    ktq_model_info info;
    ktq_model_info_init(&info, KTQ_MODEL_INFO_VERSION);
    ASSERT_EQ(ktq_model_get_info(&info, mc, nullptr), KTQ_OK);
    EXPECT_EQ(info.source_dtype, KTQ_DTYPE_BF16);
    EXPECT_EQ(info.fp8_block_rows, 0);  // quantization_config is gone
    EXPECT_EQ(info.num_experts, 16);
    ktq_model_free(ma);
    ktq_model_free(mc);
    ktq_model_free(m);
}

TEST(Writer, LayerByLayerInAnyOrderEqualsKtqWrite) {
    ktq_model *m = open_shared("tiny-qwen3-moe");
    if (!m) GTEST_SKIP() << "shared test models not found";
    TempDir a, b;
    ASSERT_EQ(convert(m, a.path(), 2, 0), KTQ_OK);
    ktq_writer *w = nullptr;
    ASSERT_EQ(ktq_writer_open(&w, m, b.path().c_str(), KTQ_FORMAT_HF_BF16, nullptr, nullptr), KTQ_OK);
    ktq_error *err = nullptr;
    EXPECT_EQ(ktq_writer_finish(w, &err), KTQ_ERR_STATE);  // nothing written yet
    EXPECT_NE(std::string(ktq_error_message(err)).find("not written"), std::string::npos);
    ktq_error_free(err);
    for (int layer : {2, KTQ_LAYER_GLOBALS, 0, 1}) ASSERT_EQ(ktq_quantize_layer(m, layer, nullptr, w, nullptr), KTQ_OK);
    EXPECT_EQ(ktq_quantize_layer(m, 1, nullptr, w, nullptr), KTQ_ERR_STATE);  // twice
    EXPECT_EQ(ktq_quantize_layer(m, 7, nullptr, w, nullptr), KTQ_ERR_NOT_FOUND);
    ASSERT_EQ(ktq_writer_finish(w, nullptr), KTQ_OK);
    EXPECT_EQ(ktq_writer_finish(w, nullptr), KTQ_ERR_STATE);
    ktq_writer_free(w);
    EXPECT_EQ(folder_bytes(a.path()), folder_bytes(b.path()));
    ktq_model_free(m);
}

namespace {
struct CancelAfter {
    int calls = 0;
    int limit;
    uint64_t last_done = 0;
    bool monotonic = true;
};
int cancel_cb(const ktq_progress *p, void *payload) {
    auto *c = static_cast<CancelAfter *>(payload);
    c->monotonic = c->monotonic && p->bytes_done >= c->last_done && p->bytes_done <= p->bytes_total;
    c->last_done = p->bytes_done;
    return ++c->calls >= c->limit ? 1 : 0;
}
}  // namespace

TEST(Writer, CancellationLeavesNoFinalOutput) {
    ktq_model *m = open_shared("tiny-deepseek-v3-fp8");
    if (!m) GTEST_SKIP() << "shared test models not found";
    TempDir out;
    ktq_writer *w = nullptr;
    ASSERT_EQ(ktq_writer_open(&w, m, out.path().c_str(), KTQ_FORMAT_HF_BF16, nullptr, nullptr), KTQ_OK);
    CancelAfter cancel{0, 20};
    ktq_quantize_options qo;
    ktq_quantize_options_init(&qo, KTQ_QUANTIZE_OPTIONS_VERSION);
    qo.progress = cancel_cb;
    qo.payload = &cancel;
    ktq_error *err = nullptr;
    EXPECT_EQ(ktq_write(m, &qo, w, &err), KTQ_ERR_CANCELLED);
    EXPECT_EQ(ktq_error_status(err), KTQ_ERR_CANCELLED);
    ktq_error_free(err);
    EXPECT_EQ(cancel.calls, 20);
    EXPECT_TRUE(cancel.monotonic);
    ktq_writer_free(w);
    EXPECT_TRUE(list_dir(out.path()).empty()) << list_dir(out.path()).front();
    ktq_model_free(m);
}

TEST(Writer, ProgressReachesTheTotal) {
    ktq_model *m = open_shared("tiny-mixtral");
    if (!m) GTEST_SKIP() << "shared test models not found";
    TempDir out;
    ktq_writer *w = nullptr;
    ASSERT_EQ(ktq_writer_open(&w, m, out.path().c_str(), KTQ_FORMAT_HF_BF16, nullptr, nullptr), KTQ_OK);
    struct Seen {
        uint64_t done = 0, total = 0;
        int layers = 0;
    } seen;
    ktq_quantize_options qo;
    ktq_quantize_options_init(&qo, KTQ_QUANTIZE_OPTIONS_VERSION);
    qo.progress = [](const ktq_progress *p, void *payload) {
        auto *s = static_cast<Seen *>(payload);
        s->done = p->bytes_done;
        s->total = p->bytes_total;
        s->layers = p->layers_total;
        return 0;
    };
    qo.payload = &seen;
    ASSERT_EQ(ktq_write(m, &qo, w, nullptr), KTQ_OK);
    ktq_writer_free(w);
    ktq_model_info info;
    ktq_model_info_init(&info, KTQ_MODEL_INFO_VERSION);
    ktq_model_get_info(&info, m, nullptr);
    EXPECT_EQ(seen.done, seen.total);
    EXPECT_EQ(seen.total, info.total_bytes);
    EXPECT_EQ(seen.layers, 2);
    ktq_model_free(m);
}

TEST(Writer, RefusesNonEmptyOrInputFolder) {
    ktq_model *m = open_shared("tiny-llama");
    if (!m) GTEST_SKIP() << "shared test models not found";
    TempDir out;
    write_file(out / "keep.txt", "x");
    ktq_writer *w = nullptr;
    ktq_error *err = nullptr;
    EXPECT_EQ(ktq_writer_open(&w, m, out.path().c_str(), KTQ_FORMAT_HF_BF16, nullptr, &err), KTQ_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(ktq_error_message(err)).find("not empty"), std::string::npos);
    ktq_error_free(err);
    EXPECT_EQ(w, nullptr);
    EXPECT_EQ(ktq_writer_open(&w, m, shared_model("tiny-llama").c_str(), KTQ_FORMAT_HF_BF16, nullptr, &err),
              KTQ_ERR_INVALID_ARGUMENT);
    ktq_error_free(err);
    ktq_model_free(m);
}

TEST(Writer, FullDiskIsReportedAndLeavesNoFinalFile) {
    ktq_model *m = open_shared("tiny-qwen3-moe");
    if (!m) GTEST_SKIP() << "shared test models not found";
    TempDir out;
    struct rlimit old {};
    getrlimit(RLIMIT_FSIZE, &old);
    auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    struct rlimit small = old;
    small.rlim_cur = 1 << 20;  // 1 MiB: the 23 MiB output cannot fit
    setrlimit(RLIMIT_FSIZE, &small);
    std::string message;
    int st = convert(m, out.path(), 2, 0, &message);
    setrlimit(RLIMIT_FSIZE, &old);
    std::signal(SIGXFSZ, old_handler);
    EXPECT_EQ(st, KTQ_ERR_NO_SPACE) << message;
    EXPECT_NE(message.find("model.safetensors"), std::string::npos) << message;
    for (const auto &name : list_dir(out.path())) ADD_FAILURE() << "left behind: " << name;
    ktq_model_free(m);
}

TEST(Writer, ResumeOfAFinishedConversionIsANoOpAndPlanWorks) {
    // Regression: resuming a finished conversion once dereferenced a writer
    // that had no shards (found by the kill/resume test).
    ktq_model *m = open_shared("tiny-llama");
    if (!m) GTEST_SKIP() << "shared test models not found";
    TempDir out;
    ASSERT_EQ(convert(m, out.path(), 2, 0), KTQ_OK);
    const std::string before = folder_bytes(out.path());
    ktq_writer_options wo;
    ktq_writer_options_init(&wo, KTQ_WRITER_OPTIONS_VERSION);
    wo.resume = 1;
    ktq_writer *w = nullptr;
    ASSERT_EQ(ktq_writer_open(&w, m, out.path().c_str(), KTQ_FORMAT_HF_BF16, &wo, nullptr), KTQ_OK);
    uint64_t bytes = 0;
    size_t files = 0;
    ASSERT_EQ(ktq_writer_plan(&bytes, &files, w, nullptr), KTQ_OK);
    EXPECT_EQ(files, 1u);
    EXPECT_GT(bytes, 0u);
    ASSERT_EQ(ktq_write(m, nullptr, w, nullptr), KTQ_OK);
    ktq_writer_free(w);
    EXPECT_EQ(folder_bytes(out.path()), before);
    // Without resume, the finished folder is refused with a clear message.
    ktq_error *err = nullptr;
    EXPECT_EQ(ktq_writer_open(&w, m, out.path().c_str(), KTQ_FORMAT_HF_BF16, nullptr, &err), KTQ_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(ktq_error_message(err)).find("already holds a finished ktq conversion"), std::string::npos);
    ktq_error_free(err);
    ktq_model_free(m);
}

TEST(Concurrency, SeveralModelsConvertedFromSeveralThreadsAtOnce) {
    // The contract of the headers: a model may be read from many threads at
    // once; each writer is used by one thread. Four threads convert two
    // models (each shared by two threads) into four folders, with 1, 2, 3 and
    // 4 worker threads; the outputs must equal single-threaded conversions.
    ktq_model *fp8 = open_shared("tiny-deepseek-v3-fp8");
    ktq_model *moe = open_shared("tiny-qwen3-moe");
    if (!fp8 || !moe) GTEST_SKIP() << "shared test models not found";
    TempDir ref_fp8, ref_moe;
    ASSERT_EQ(convert(fp8, ref_fp8.path(), 1, 0), KTQ_OK);
    ASSERT_EQ(convert(moe, ref_moe.path(), 1, 0), KTQ_OK);
    TempDir outs[4];
    int status[4] = {-1, -1, -1, -1};
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i)
        threads.emplace_back([&, i] { status[i] = convert(i % 2 ? moe : fp8, outs[i].path(), i + 1, 3u << 20); });
    for (auto &t : threads) t.join();
    for (int i = 0; i < 4; ++i) ASSERT_EQ(status[i], KTQ_OK) << i;
    // Same tensors as the references (shard layout differs: 3 MiB shards).
    for (int i = 0; i < 4; ++i) {
        ktq_model *a = nullptr, *b = nullptr;
        ASSERT_EQ(ktq_open_model(&a, outs[i].path().c_str(), nullptr, nullptr), KTQ_OK);
        ASSERT_EQ(ktq_open_model(&b, (i % 2 ? ref_moe : ref_fp8).path().c_str(), nullptr, nullptr), KTQ_OK);
        ASSERT_EQ(ktq_model_tensor_count(a), ktq_model_tensor_count(b));
        for (size_t k = 0; k < ktq_model_tensor_count(a); ++k) {
            ktq_tensor_info ti;
            ktq_tensor_info_init(&ti, KTQ_TENSOR_INFO_VERSION);
            ASSERT_EQ(ktq_model_tensor_info(&ti, a, k, nullptr), KTQ_OK);
            std::vector<uint8_t> x(ti.nbytes), y(ti.nbytes);
            ASSERT_EQ(ktq_model_read_tensor(x.data(), x.size(), a, ti.name, KTQ_DTYPE_BF16, nullptr), KTQ_OK);
            ASSERT_EQ(ktq_model_read_tensor(y.data(), y.size(), b, ti.name, KTQ_DTYPE_BF16, nullptr), KTQ_OK);
            ASSERT_EQ(x, y) << i << " " << ti.name;
        }
        ktq_model_free(a);
        ktq_model_free(b);
    }
    ktq_model_free(fp8);
    ktq_model_free(moe);
}

TEST(Determinism, OneTwoAndEightThreadsGiveTheSameBytes) {
    for (const char *name : {"tiny-deepseek-v3-fp8", "tiny-mixtral"}) {
        ktq_model *m = open_shared(name);
        if (!m) GTEST_SKIP() << "shared test models not found";
        TempDir a, b, c;
        ASSERT_EQ(convert(m, a.path(), 1, 0), KTQ_OK);
        ASSERT_EQ(convert(m, b.path(), 2, 0), KTQ_OK);
        ASSERT_EQ(convert(m, c.path(), 8, 0), KTQ_OK);
        const std::string one = folder_bytes(a.path());
        EXPECT_EQ(one, folder_bytes(b.path())) << name;
        EXPECT_EQ(one, folder_bytes(c.path())) << name;
        ktq_model_free(m);
    }
}

TEST(Writer, KeepPartialThenResumeLayerContinues) {
    ktq_model *m = open_shared("tiny-qwen3-moe");
    if (!m) GTEST_SKIP() << "shared test models not found";
    TempDir ref, out;
    ASSERT_EQ(convert(m, ref.path(), 2, 0), KTQ_OK);
    ktq_writer_options wo;
    ktq_writer_options_init(&wo, KTQ_WRITER_OPTIONS_VERSION);
    wo.keep_partial = 1;
    ktq_writer *w = nullptr;
    ASSERT_EQ(ktq_writer_open(&w, m, out.path().c_str(), KTQ_FORMAT_HF_BF16, &wo, nullptr), KTQ_OK);
    ASSERT_EQ(ktq_quantize_layer(m, 0, nullptr, w, nullptr), KTQ_OK);
    ASSERT_EQ(ktq_quantize_layer(m, 1, nullptr, w, nullptr), KTQ_OK);
    ktq_writer_free(w);  // unfinished: partial files and journal stay
    auto left = list_dir(out.path());
    EXPECT_EQ(left, (std::vector<std::string>{".ktq-journal.json", "model.safetensors.ktq-partial"}));

    // Without resume the folder is refused, naming what it holds.
    ktq_error *err = nullptr;
    EXPECT_EQ(ktq_writer_open(&w, m, out.path().c_str(), KTQ_FORMAT_HF_BF16, nullptr, &err), KTQ_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(ktq_error_message(err)).find("interrupted ktq conversion"), std::string::npos);
    ktq_error_free(err);

    wo.resume = 1;
    wo.resume_layer = 2;  // layers 0 and 1 are trusted as written
    ASSERT_EQ(ktq_writer_open(&w, m, out.path().c_str(), KTQ_FORMAT_HF_BF16, &wo, nullptr), KTQ_OK);
    EXPECT_EQ(ktq_quantize_layer(m, 1, nullptr, w, nullptr), KTQ_ERR_STATE);  // already written
    ASSERT_EQ(ktq_write(m, nullptr, w, nullptr), KTQ_OK);
    ktq_writer_free(w);
    EXPECT_EQ(folder_bytes(out.path()), folder_bytes(ref.path()));

    // --resume-layer with nothing to resume is an error, not a silent restart.
    TempDir empty;
    EXPECT_EQ(ktq_writer_open(&w, m, empty.path().c_str(), KTQ_FORMAT_HF_BF16, &wo, &err), KTQ_ERR_STATE);
    EXPECT_NE(std::string(ktq_error_message(err)).find("no interrupted conversion"), std::string::npos);
    ktq_error_free(err);
    ktq_model_free(m);
}

TEST(CApi, AbsurdThreadCountIsAnErrorNotACrash) {
    // Regression (review): failing to start threads called std::terminate.
    std::string path = shared_model("tiny-llama");
    if (path.empty()) GTEST_SKIP() << "shared test models not found";
    ktq_open_options o;
    ktq_open_options_init(&o, KTQ_OPEN_OPTIONS_VERSION);
    o.threads = 100000;
    ktq_model *m = nullptr;
    ktq_error *err = nullptr;
    EXPECT_EQ(ktq_open_model(&m, path.c_str(), &o, &err), KTQ_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(ktq_error_message(err)).find("threads"), std::string::npos);
    ktq_error_free(err);
}

TEST(Writer, ResumeRefusesAChangedInputAndReconvertingKeepsItsOwnJournal) {
    ktq_model *src = open_shared("tiny-llama");
    if (!src) GTEST_SKIP() << "shared test models not found";
    TempDir copy, first, partial, second;
    ASSERT_EQ(convert(src, first.path(), 2, 0), KTQ_OK);
    ktq_model_free(src);
    // A ktq output converted again: its journal (a dotfile) is not an aux file
    // to copy - a copied "complete" journal once made an interrupted finish
    // look finished.
    write_file(first / ".gitattributes", "*.safetensors filter=lfs\n");
    ktq_model *m = nullptr;
    ASSERT_EQ(ktq_open_model(&m, first.path().c_str(), nullptr, nullptr), KTQ_OK);
    ktq_writer_options keep;
    ktq_writer_options_init(&keep, KTQ_WRITER_OPTIONS_VERSION);
    keep.keep_partial = 1;
    ktq_writer *w = nullptr;
    ASSERT_EQ(ktq_writer_open(&w, m, second.path().c_str(), KTQ_FORMAT_HF_BF16, &keep, nullptr), KTQ_OK);
    ASSERT_EQ(ktq_quantize_layer(m, 0, nullptr, w, nullptr), KTQ_OK);
    ktq_writer_free(w);
    EXPECT_NE(read_file(second / ".ktq-journal.json").find("\"complete\":false"), std::string::npos);
    ASSERT_EQ(convert(m, second.path(), 2, 0), KTQ_ERR_INVALID_ARGUMENT);  // interrupted: needs resume
    ktq_model_free(m);
    TempDir third;
    ASSERT_EQ(ktq_open_model(&m, first.path().c_str(), nullptr, nullptr), KTQ_OK);
    ASSERT_EQ(convert(m, third.path(), 2, 0), KTQ_OK);
    auto names = list_dir(third.path());
    EXPECT_EQ(std::find(names.begin(), names.end(), ".gitattributes"), names.end());
    ktq_model_free(m);

    // Interrupt a conversion of a copy, then change the copy's weights file.
    for (const auto &name : list_dir(first.path()))
        if (name[0] != '.') write_file(copy / name, read_file(first / name));
    ASSERT_EQ(ktq_open_model(&m, copy.path().c_str(), nullptr, nullptr), KTQ_OK);
    ktq_writer_options wo;
    ktq_writer_options_init(&wo, KTQ_WRITER_OPTIONS_VERSION);
    wo.keep_partial = 1;
    ASSERT_EQ(ktq_writer_open(&w, m, partial.path().c_str(), KTQ_FORMAT_HF_BF16, &wo, nullptr), KTQ_OK);
    ASSERT_EQ(ktq_quantize_layer(m, 0, nullptr, w, nullptr), KTQ_OK);
    ktq_writer_free(w);
    ktq_model_free(m);
    struct timespec times[2] = {{0, UTIME_OMIT}, {1, 0}};  // new mtime, as a re-download would
    ASSERT_EQ(utimensat(AT_FDCWD, (copy / "model.safetensors").c_str(), times, 0), 0);
    ASSERT_EQ(ktq_open_model(&m, copy.path().c_str(), nullptr, nullptr), KTQ_OK);
    wo.resume = 1;
    ktq_error *err = nullptr;
    EXPECT_EQ(ktq_writer_open(&w, m, partial.path().c_str(), KTQ_FORMAT_HF_BF16, &wo, &err), KTQ_ERR_STATE);
    EXPECT_NE(std::string(ktq_error_message(err)).find("another model"), std::string::npos);
    ktq_error_free(err);
    ktq_model_free(m);
}
