// C API: calibration data.
#include "api/handles.h"
#include "ktq/calibration.h"

using ktq::guarded;
using ktq::require;

extern "C" {

ktq_status ktq_calibration_options_init(ktq_calibration_options *opts, unsigned version) {
    ktq_status st = ktq::init_versioned(opts, version, KTQ_CALIBRATION_OPTIONS_VERSION);
    if (st != KTQ_OK) return st;
    opts->num_samples = 512;
    opts->max_sequence_length = 2048;
    opts->seed = 42;
    return KTQ_OK;
}

ktq_status ktq_calibration_open(ktq_calibration **out, const char *dataset_path, const ktq_tokenizer *tokenizer,
                                const ktq_calibration_options *opts, ktq_error **err) {
    return guarded(err, [&] {
        require(out != nullptr, "out is NULL");
        *out = nullptr;
        require(dataset_path != nullptr, "dataset_path is NULL");
        require(tokenizer != nullptr, "tokenizer is NULL");
        ktq::CalibrationOptions o;
        if (opts) {
            ktq::check_version(opts->version, KTQ_CALIBRATION_OPTIONS_VERSION, "ktq_calibration_options");
            o.num_samples = opts->num_samples;
            o.max_sequence_length = opts->max_sequence_length;
            o.seed = opts->seed;
            if (opts->text_field) o.text_field = opts->text_field;
        }
        auto c = std::make_unique<ktq_calibration>();
        c->data = ktq::CalibrationData::from_file(dataset_path, *tokenizer->impl, o);
        *out = c.release();
    });
}

ktq_status ktq_calibration_from_tokens(ktq_calibration **out, const int32_t *ids, const uint64_t *offsets,
                                       size_t count, ktq_error **err) {
    return guarded(err, [&] {
        require(out != nullptr, "out is NULL");
        *out = nullptr;
        require(count > 0, "count is 0");
        require(offsets != nullptr, "offsets is NULL");
        auto c = std::make_unique<ktq_calibration>();
        for (size_t i = 0; i < count; ++i) {
            if (offsets[i + 1] < offsets[i] + 2)
                ktq::fail(KTQ_ERR_INVALID_ARGUMENT, "sequence " + std::to_string(i) + " has fewer than 2 tokens");
            require(ids != nullptr, "ids is NULL");
            c->data.samples.emplace_back(ids + offsets[i], ids + offsets[i + 1]);
            for (int32_t t : c->data.samples.back())
                if (t < 0) ktq::fail(KTQ_ERR_INVALID_ARGUMENT, "sequence " + std::to_string(i) + " has a negative token id");
        }
        c->data.candidates = count;
        *out = c.release();
    });
}

void ktq_calibration_free(ktq_calibration *calibration) { delete calibration; }

ktq_status ktq_calibration_info(size_t *samples, uint64_t *tokens, const ktq_calibration *calibration, ktq_error **err) {
    return guarded(err, [&] {
        require(calibration != nullptr, "calibration is NULL");
        if (samples) *samples = calibration->data.samples.size();
        if (tokens) *tokens = calibration->data.tokens();
    });
}

}  // extern "C"
