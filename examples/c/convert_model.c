/* convert_model.c - open a Hugging Face checkpoint with libktq, print what it
 * is, and write it as a BF16 checkpoint.
 *
 *   cc convert_model.c $(pkg-config --cflags --libs ktq) -o convert_model
 *   ./convert_model MODEL_DIR OUT_DIR
 */
#include <stdio.h>

#include <ktq/ktq.h>

static int on_progress(const ktq_progress *p, void *payload) {
    int *last_layer = payload;
    if (p->layer != *last_layer) {
        printf("  %s %d/%d\n", p->layer < 0 ? "globals" : "layer", p->layer + 1, p->layers_total);
        *last_layer = p->layer;
    }
    return 0; /* non-zero would cancel */
}

static int fail(const char *what, int status, ktq_error *err) {
    fprintf(stderr, "%s failed: %s (%s)\n", what, err ? ktq_error_message(err) : "", ktq_status_str(status));
    ktq_error_free(err);
    return 1;
}

int main(int argc, char **argv) {
    ktq_model *model = NULL;
    ktq_writer *writer = NULL;
    ktq_error *err = NULL;
    ktq_model_info info;
    ktq_quantize_options qopts;
    int status, last_layer = -2;

    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL_DIR OUT_DIR\n", argv[0]);
        return 2;
    }
    printf("libktq %s (built against %s)\n", ktq_version(), KTQ_VERSION_STRING);

    status = ktq_open_model(&model, argv[1], NULL, &err);
    if (status != KTQ_OK) return fail("ktq_open_model", status, err);

    ktq_model_info_init(&info, KTQ_MODEL_INFO_VERSION);
    status = ktq_model_get_info(&info, model, &err);
    if (status != KTQ_OK) {
        ktq_model_free(model);
        return fail("ktq_model_get_info", status, err);
    }
    printf("%s: %s, %d layers, %d experts (top-%d), %d shared, %d dense first, source %s\n", info.path,
           info.architecture, info.num_layers, info.num_experts, info.experts_per_token, info.num_shared_experts,
           info.first_dense_layers, ktq_dtype_name(info.source_dtype));

    status = ktq_writer_open(&writer, model, argv[2], KTQ_FORMAT_HF_BF16, NULL, &err);
    if (status != KTQ_OK) {
        ktq_model_free(model);
        return fail("ktq_writer_open", status, err);
    }
    ktq_quantize_options_init(&qopts, KTQ_QUANTIZE_OPTIONS_VERSION);
    qopts.progress = on_progress;
    qopts.payload = &last_layer;
    status = ktq_write(model, &qopts, writer, &err);
    ktq_writer_free(writer);
    ktq_model_free(model);
    if (status != KTQ_OK) return fail("ktq_write", status, err);
    printf("wrote %s\n", argv[2]);
    return 0;
}
