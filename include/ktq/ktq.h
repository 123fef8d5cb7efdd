/*
 * ktq/ktq.h - the whole public C API of libktq.
 *
 *   common.h  version, status codes, per-call errors, dtypes, progress
 *   model.h   opening a Hugging Face checkpoint, reading tensors and experts
 *   writer.h  engines and writers (ktq_writer_open, ktq_quantize_layer, ktq_write)
 *   system.h  what the machine offers (CPU features, NUMA, CUDA)
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

#endif /* KTQ_KTQ_H */
