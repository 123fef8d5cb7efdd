package io.ktq;

import java.util.List;

/**
 * Options of {@link Ktq#convert}: output format, threads (0 = one per core), shard size, overwrite,
 * resume, progress interval; for the kt-kernel formats the NUMA parts per expert (0 = 2) and loose
 * .kt files instead of merged safetensors; for {@link Format#COMPRESSED_TENSORS} the {@link Scheme},
 * the target and ignore patterns, and the device that computes.
 */
public record ConvertOptions(Format format, int threads, long maxShardBytes, boolean overwrite, boolean resume,
                             long progressIntervalMillis, int numaParts, boolean looseFiles, Scheme scheme,
                             List<String> targets, List<String> ignore, Device device, GgmlType ggmlType,
                             boolean splitExperts, String ggufMix, GgufExtras gguf) {
    public ConvertOptions {
        if (gguf == null) gguf = GgufExtras.NONE;
    }

    /** Output formats (values of the C API's ktq_format). */
    public enum Format {
        /** Hugging Face checkpoint, every floating tensor BF16. */
        BF16(1),
        /** kt-kernel's AMX INT4 expert layout (convert_cpu_weights.py --quant-method int4). */
        KT_INT4(2),
        /** kt-kernel's AMX INT8 expert layout. */
        KT_INT8(3),
        /**
         * compressed-tensors "pack-quantized" (W4A16 / W8A16 for vLLM, SGLang, transformers),
         * byte-identical to llm-compressor's RTN.
         */
        COMPRESSED_TENSORS(4),
        /** One GGUF file (llama.cpp, Candle): the output path is the file's. See {@link #withGgmlType}. */
        GGUF(5);

        final int code;

        Format(int code) {
            this.code = code;
        }
    }

    /**
     * ggml block types (the numbers GGUF files store); also the types of {@link Ktq#quantizeBlocks} and
     * {@link Ktq#dequantizeBlocks}.
     */
    public enum GgmlType {
        F32(0), F16(1), Q4_0(2), Q4_1(3), Q5_0(6), Q5_1(7), Q8_0(8), Q2_K(10), Q3_K(11), Q4_K(12), Q5_K(13), Q6_K(14),
        BF16(30);

        final int code;

        GgmlType(int code) {
            this.code = code;
        }

        /** The number GGUF files store for this type (ggml's enum ggml_type). */
        public int id() {
            return code;
        }

        /** Values per block: 1 for F32, F16 and BF16, 32 for Q4_0 ... Q8_0, 256 for the K-quants. */
        public int blockSize() {
            NativeLibrary.load();
            return (int) io.ktq.internal.ktqswig.ktqs_ggml_block_size(code);
        }

        /** Bytes per block. */
        public int typeSize() {
            NativeLibrary.load();
            return (int) io.ktq.internal.ktqswig.ktqs_ggml_type_size(code);
        }
    }

    /** Where the engine computes. */
    public enum Device {
        CPU(0),
        /** CUDA device 0 (compressed-tensors); the same bytes as the CPU. */
        CUDA(1);

        final int code;

        Device(int code) {
            this.code = code;
        }
    }

    /**
     * A compressed-tensors integer weight scheme: bits (4 or 8), weights per scale along a row (-1 =
     * per output channel), zero points or not.
     */
    public record Scheme(int bits, int groupSize, boolean asymmetric, boolean dtypeRounding, boolean mseObserver) {
        public static final Scheme W4A16 = new Scheme(4, 128, false, false);
        public static final Scheme W8A16 = new Scheme(8, 128, false, false);

        /** Without dtypeRounding: the codes llm-compressor computes on a GPU (float32). */
        public Scheme(int bits, int groupSize, boolean asymmetric) {
            this(bits, groupSize, asymmetric, false);
        }

        /** With the min-max observer (llm-compressor's default). */
        public Scheme(int bits, int groupSize, boolean asymmetric, boolean dtypeRounding) {
            this(bits, groupSize, asymmetric, dtypeRounding, false);
        }

        /**
         * The same scheme with llm-compressor's "mse" observer: each group's range shrunk by up to 19 % to the
         * smallest sum of |error|^2.4. Slower, usually more accurate.
         */
        public Scheme withMseObserver() {
            return new Scheme(bits, groupSize, asymmetric, dtypeRounding, true);
        }
    }

    public static ConvertOptions defaults() {
        return new ConvertOptions(Format.BF16, 0, 0, false, false, 200, 0, false, Scheme.W4A16, List.of(), null,
                Device.CPU, GgmlType.Q8_0, false, null, GgufExtras.NONE);
    }

    public ConvertOptions withFormat(Format f) {
        return new ConvertOptions(f, threads, maxShardBytes, overwrite, resume, progressIntervalMillis, numaParts,
                looseFiles, scheme, targets, ignore, device, ggmlType, splitExperts, ggufMix, gguf);
    }

    public ConvertOptions withThreads(int t) {
        return new ConvertOptions(format, t, maxShardBytes, overwrite, resume, progressIntervalMillis, numaParts,
                looseFiles, scheme, targets, ignore, device, ggmlType, splitExperts, ggufMix, gguf);
    }

    public ConvertOptions withProgressIntervalMillis(long ms) {
        return new ConvertOptions(format, threads, maxShardBytes, overwrite, resume, ms, numaParts, looseFiles,
                scheme, targets, ignore, device, ggmlType, splitExperts, ggufMix, gguf);
    }

    public ConvertOptions withNumaParts(int parts) {
        return new ConvertOptions(format, threads, maxShardBytes, overwrite, resume, progressIntervalMillis, parts,
                looseFiles, scheme, targets, ignore, device, ggmlType, splitExperts, ggufMix, gguf);
    }

    public ConvertOptions withLooseFiles(boolean loose) {
        return new ConvertOptions(format, threads, maxShardBytes, overwrite, resume, progressIntervalMillis, numaParts,
                loose, scheme, targets, ignore, device, ggmlType, splitExperts, ggufMix, gguf);
    }

    /** compressed-tensors: the scheme (also selects {@link Format#COMPRESSED_TENSORS}). */
    public ConvertOptions withScheme(Scheme s) {
        return new ConvertOptions(Format.COMPRESSED_TENSORS, threads, maxShardBytes, overwrite, resume,
                progressIntervalMillis, numaParts, looseFiles, s, targets, ignore, device, ggmlType, splitExperts, ggufMix, gguf);
    }

    /** compressed-tensors: modules to quantize ("Linear", names, "re:REGEX"); empty = every Linear. */
    public ConvertOptions withTargets(List<String> t) {
        return new ConvertOptions(format, threads, maxShardBytes, overwrite, resume, progressIntervalMillis, numaParts,
                looseFiles, scheme, List.copyOf(t), ignore, device, ggmlType, splitExperts, ggufMix, gguf);
    }

    /** compressed-tensors: modules kept in high precision; null = the library's defaults, empty = none. */
    public ConvertOptions withIgnore(List<String> i) {
        return new ConvertOptions(format, threads, maxShardBytes, overwrite, resume, progressIntervalMillis, numaParts,
                looseFiles, scheme, targets, i == null ? null : List.copyOf(i), device, ggmlType, splitExperts, ggufMix, gguf);
    }

    public ConvertOptions withDevice(Device d) {
        return new ConvertOptions(format, threads, maxShardBytes, overwrite, resume, progressIntervalMillis, numaParts,
                looseFiles, scheme, targets, ignore, d, ggmlType, splitExperts, ggufMix, gguf);
    }

    /** GGUF: the weights' ggml type (also selects {@link Format#GGUF}). */
    public ConvertOptions withGgmlType(GgmlType t) {
        return new ConvertOptions(Format.GGUF, threads, maxShardBytes, overwrite, resume, progressIntervalMillis,
                numaParts, looseFiles, scheme, targets, ignore, device, t, splitExperts, ggufMix, gguf);
    }

    /** GGUF: routed experts one tensor per expert (Candle's quantized_llama) instead of stacked. */
    public ConvertOptions withSplitExperts(boolean split) {
        return new ConvertOptions(format, threads, maxShardBytes, overwrite, resume, progressIntervalMillis, numaParts,
                looseFiles, scheme, targets, ignore, device, ggmlType, split, ggufMix, gguf);
    }

    /**
     * GGUF: a mixture of types instead of one {@link #withGgmlType} (also selects {@link Format#GGUF}):
     * llama-quantize's file types ("Q4_K_M", "Q5_K_S", ...) with its per-tensor choices, or ktq's "MOE_Q4_K"
     * (routed experts Q4_K, other weights Q8_0) and its siblings; null = none.
     */
    public ConvertOptions withGgufMix(String mix) {
        return new ConvertOptions(Format.GGUF, threads, maxShardBytes, overwrite, resume, progressIntervalMillis,
                numaParts, looseFiles, scheme, targets, ignore, device, ggmlType, splitExperts, mix, gguf);
    }

    /**
     * GGUF writer options beyond the type: llama.cpp's pre-tokenizer name to write instead of the one derived
     * from tokenizer.json (null = derive; written unchecked); an importance matrix (llama-imatrix's GGUF or
     * legacy .dat) to quantize with, as llama-quantize --imatrix (null = none); a routing_stats.json whose
     * per-expert token counts the file records (null = from a GGUF imatrix's counts, if any); and whether to
     * record the SHA-256 of the source's config, tokenizer and weight files (reads the checkpoint once more).
     */
    public record GgufExtras(String tokenizerPre, java.nio.file.Path imatrix, java.nio.file.Path routingStats,
                             boolean sourceSha256) {
        public static final GgufExtras NONE = new GgufExtras(null, null, null, false);
    }

    /** GGUF: the options of {@link GgufExtras} (also selects {@link Format#GGUF}). */
    public ConvertOptions withGgufExtras(GgufExtras extras) {
        return new ConvertOptions(Format.GGUF, threads, maxShardBytes, overwrite, resume, progressIntervalMillis, numaParts,
                looseFiles, scheme, targets, ignore, device, ggmlType, splitExperts, ggufMix,
                extras == null ? GgufExtras.NONE : extras);
    }
}
