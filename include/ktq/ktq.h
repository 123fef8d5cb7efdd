/*
 * ktq/ktq.h - the whole public C API of libktq.
 *
 *   common.h  version, status codes, per-call errors, dtypes, progress
 *   model.h   opening a Hugging Face checkpoint, reading tensors and experts
 *   writer.h  engines and writers (ktq_writer_open, ktq_quantize_layer, ktq_write)
 *   system.h  what the machine offers (CPU features, NUMA, CUDA)
 *   quant.h   ggml block quantization of single tensors (Q8_0, Q4_0, ...)
 *   kt.h      kt-kernel AMX expert outputs read back, merged from loose files
 *   compressed_tensors.h  W4A16/W8A16 quantization of single matrices (compressed-tensors)
 *
 * Link with `pkg-config --cflags --libs ktq` or CMake `find_package(ktq)` and
 * target `ktq::ktq`.
 */
#ifndef KTQ_KTQ_H
#define KTQ_KTQ_H

#include "common.h"
#include "model.h"
#include "writer.h"
#include "system.h"
#include "quant.h"
#include "kt.h"
#include "compressed_tensors.h"
#include "text.h"
#include "eval.h"
#include "calibration.h"
#include "gptq.h"

#endif /* KTQ_KTQ_H */
