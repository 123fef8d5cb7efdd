// RecordedRows: the AWQ engine's recorded inputs, in memory or in a
// memory-mapped temporary file; both must hand back exactly what was
// appended, across the file's growth (its mapping may move).
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <string>
#include <vector>

#include "engines/recorded_rows.h"
#include "runtime/error.h"

namespace {

std::vector<float> pattern(size_t n, float seed) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = seed + static_cast<float>(i % 9973) * 0.5f;
    return v;
}

int files_named_like(const std::string &dir, const std::string &prefix) {
    int n = 0;
    if (DIR *d = opendir(dir.c_str())) {
        while (dirent *e = readdir(d)) n += std::string(e->d_name).rfind(prefix, 0) == 0;
        closedir(d);
    }
    return n;
}

}  // namespace

TEST(RecordedRows, FileHoldsWhatMemoryHoldsAcrossGrowth) {
    ktq::RecordedRows memory, file;
    file.use_file("test rows");
    EXPECT_TRUE(file.in_file());
    EXPECT_FALSE(memory.in_file());
    std::vector<float> all;
    // Pieces whose sum crosses the first capacity (1 Mi values) and several doublings.
    for (size_t piece : {size_t{3}, size_t{700000}, size_t{500000}, size_t{1}, size_t{3000000}}) {
        const std::vector<float> v = pattern(piece, static_cast<float>(all.size()));
        memory.append(v.data(), v.size());
        file.append(v.data(), v.size());
        all.insert(all.end(), v.begin(), v.end());
    }
    ASSERT_EQ(memory.size(), all.size());
    ASSERT_EQ(file.size(), all.size());
    EXPECT_EQ(0, std::memcmp(memory.data(), all.data(), all.size() * sizeof(float)));
    EXPECT_EQ(0, std::memcmp(file.data(), all.data(), all.size() * sizeof(float)));
    file[5] /= 2;  // the engine divides recorded inputs in place by the chosen scales
    EXPECT_EQ(file.data()[5], all[5] / 2);
}

TEST(RecordedRows, TemporaryFileLeavesNoName) {
    const char *tmp = std::getenv("TMPDIR");
    const std::string dir = tmp && *tmp ? tmp : "/tmp";
    const int before = files_named_like(dir, "ktq-recorded-");
    {
        ktq::RecordedRows rows;
        rows.use_file("test rows");
        const std::vector<float> v = pattern(1000, 1);
        rows.append(v.data(), v.size());
        EXPECT_EQ(files_named_like(dir, "ktq-recorded-"), before);  // unlinked as soon as it is made
    }
    EXPECT_EQ(files_named_like(dir, "ktq-recorded-"), before);
}

TEST(RecordedRows, UnwritableTemporaryFolderIsAClearError) {
    const char *old = std::getenv("TMPDIR");
    const std::string saved = old ? old : "";
    setenv("TMPDIR", "/nonexistent-ktq-folder", 1);
    ktq::RecordedRows rows;
    rows.use_file("AWQ's recorded inputs");
    const std::vector<float> v = pattern(10, 1);
    try {
        rows.append(v.data(), v.size());
        ADD_FAILURE() << "no error";
    } catch (const ktq::Error &e) {
        EXPECT_EQ(e.status(), KTQ_ERR_IO);
        EXPECT_NE(std::string(e.what()).find("/nonexistent-ktq-folder/ktq-recorded-"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("AWQ's recorded inputs"), std::string::npos) << e.what();
    }
    if (old) setenv("TMPDIR", saved.c_str(), 1); else unsetenv("TMPDIR");
}
