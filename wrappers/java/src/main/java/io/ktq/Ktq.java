package io.ktq;

import io.ktq.internal.SWIGTYPE_p_ktq_calibration;
import io.ktq.internal.SWIGTYPE_p_ktq_writer;
import io.ktq.internal.ktqs_result;
import io.ktq.internal.ktqs_token;
import io.ktq.internal.ktqswig;
import java.math.BigInteger;
import java.nio.file.Path;
import java.util.Objects;

/** Entry points of libktq for Java. */
public final class Ktq {
    private Ktq() {}

    /** The version of the libktq loaded at run time. */
    public static String version() {
        NativeLibrary.load();
        return ktqswig.ktqs_version();
    }

    static void check(ktqs_result res) throws KtqException {
        if (res.getStatus() != 0) throw new KtqException(res.getStatus(), res.getMessage());
    }

    /**
     * Writes {@code model} into {@code outDir} in {@code options.format()} (a BF16 Hugging Face checkpoint
     * by default), blocking until done.
     * The listener (may be null) is called once before the work starts and then every
     * progressIntervalMillis from a helper thread; returning false, or interrupting the calling
     * thread, cancels: a KtqException with status CANCELLED, and nothing with a final name is left.
     */
    public static void convert(Model model, Path outDir, ConvertOptions options, ProgressListener listener)
            throws KtqException {
        run(model, outDir, options, null, null, listener);
    }

    /**
     * Like {@link #convert} into the compressed-tensors format ({@code options.scheme()}), with GPTQ calibrated
     * by ktq's own forward pass on {@code gptq.dataset()} instead of rounding to nearest.
     */
    public static void convertGptq(Model model, Path outDir, ConvertOptions options, GptqOptions gptq,
            ProgressListener listener) throws KtqException {
        if (gptq == null) throw new IllegalArgumentException("gptq options are null");
        run(model, outDir, options.withFormat(ConvertOptions.Format.COMPRESSED_TENSORS), gptq, null, listener);
    }

    /**
     * Like {@link #convert} into {@code options.format()} (compressed-tensors, usually with an asymmetric scheme,
     * or GGUF), with AWQ calibrated by ktq's own forward pass on {@code awq.dataset()}: per-channel scales searched
     * and folded into the model, then rounded to nearest.
     */
    public static void convertAwq(Model model, Path outDir, ConvertOptions options, AwqOptions awq,
            ProgressListener listener) throws KtqException {
        if (awq == null) throw new IllegalArgumentException("awq options are null");
        run(model, outDir, options, null, awq, listener);
    }

    /**
     * Writes the loose kt-kernel output in {@code looseDir} (.kt files, {@link ConvertOptions#withLooseFiles}) as
     * merged safetensors into {@code outDir}, one shard per MoE layer, as kt-kernel's merge_cpu_weights.py lays
     * them out. With {@code model} (the checkpoint it was converted from; may be null) its non-expert tensors,
     * config.json and tokenizer files are added too, which gives exactly the files a merged conversion writes.
     * {@code outDir} must be empty unless {@code overwrite}; nothing has a final name until all is written.
     */
    public static void mergeKt(Path outDir, Path looseDir, Model model, boolean overwrite) throws KtqException {
        Objects.requireNonNull(outDir, "outDir");
        Objects.requireNonNull(looseDir, "looseDir");
        NativeLibrary.load();
        if (model != null) model.readLock().lock();
        ktqs_result res = new ktqs_result();
        try {
            ktqswig.ktqs_kt_merge(outDir.toString(), looseDir.toString(), model == null ? null : model.handle(),
                    overwrite ? 1 : 0, res);
            check(res);
        } finally {
            res.delete();
            if (model != null) model.readLock().unlock();
        }
    }

    /**
     * Quantizes {@code values} (a whole number of {@code type}'s blocks: {@link ConvertOptions.GgmlType#blockSize})
     * into ggml blocks, the bytes llama.cpp's reference quantizer writes.
     */
    public static byte[] quantizeBlocks(ConvertOptions.GgmlType type, float[] values) throws KtqException {
        Objects.requireNonNull(type, "type");
        Objects.requireNonNull(values, "values");
        return blocks(type, values.length, (out, res) -> ktqswig.ktqs_ggml_quantize(type.code, values, out, res));
    }

    /**
     * Rows of {@code nPerRow} values as ggml blocks of {@code type}, with per-column {@code importance} (an
     * imatrix's {@code nPerRow} values for this weight, or one expert's slice): bit-identical to llama-quantize
     * with that imatrix. Types where ggml ignores importance (F32, F16, BF16, Q8_0) give {@link #quantizeBlocks}'
     * bytes.
     */
    public static byte[] quantizeRows(ConvertOptions.GgmlType type, float[] values, int nPerRow, float[] importance)
            throws KtqException {
        Objects.requireNonNull(type, "type");
        Objects.requireNonNull(values, "values");
        Objects.requireNonNull(importance, "importance");
        return blocks(type, values.length,
                (out, res) -> ktqswig.ktqs_ggml_quantize_rows(type.code, values, nPerRow, importance, out, res));
    }

    /** Fills the blocks of {@code type} for {@code n} values with one quantizing call. */
    private interface BlockQuantizer {
        void quantize(byte[] out, ktqs_result res);
    }

    // The quantizers' shared part: the size of n values' blocks, the buffer, the call and its status.
    private static byte[] blocks(ConvertOptions.GgmlType type, int n, BlockQuantizer quantizer) throws KtqException {
        NativeLibrary.load();
        ktqs_result res = new ktqs_result();
        try {
            long bytes = ktqswig.ktqs_ggml_bytes(type.code, n, res);
            check(res);
            byte[] out = new byte[Model.arrayLength(bytes, type + " blocks")];
            quantizer.quantize(out, res);
            check(res);
            return out;
        } finally {
            res.delete();
        }
    }

    /** The {@code n} values that the ggml blocks {@code blocks} of {@code type} stand for. */
    public static float[] dequantizeBlocks(ConvertOptions.GgmlType type, byte[] blocks, int n) throws KtqException {
        Objects.requireNonNull(type, "type");
        Objects.requireNonNull(blocks, "blocks");
        NativeLibrary.load();
        ktqs_result res = new ktqs_result();
        try {
            ktqswig.ktqs_ggml_bytes(type.code, n, res);  // n: a whole number of blocks
            check(res);
            float[] out = new float[n];
            ktqswig.ktqs_ggml_dequantize(type.code, blocks, out, res);
            check(res);
            return out;
        } finally {
            res.delete();
        }
    }

    /** What this machine offers the engines: NUMA nodes, cores, instruction sets, CUDA devices. */
    public static SystemInfo systemInfo() throws KtqException {
        NativeLibrary.load();
        ktqs_result res = new ktqs_result();
        try {
            String[] fields = {"numa_nodes", "cores", "pus", "avx2", "avx512f", "avx512_vnni", "avx512_bf16",
                    "amx_tile", "amx_int8", "amx_bf16", "cuda_built", "cuda_devices"};
            long[] v = new long[fields.length];
            for (int k = 0; k < fields.length; k++) {
                v[k] = ktqswig.ktqs_system_num(fields[k], res);
                check(res);
            }
            String cpu = ktqswig.ktqs_system_text("cpu_model", res);
            check(res);
            String cuda0 = ktqswig.ktqs_system_text("cuda_device0", res);
            check(res);
            return new SystemInfo((int) v[0], (int) v[1], (int) v[2], v[3] != 0, v[4] != 0, v[5] != 0, v[6] != 0,
                    v[7] != 0, v[8] != 0, v[9] != 0, v[10] != 0, (int) v[11], cpu, cuda0);
        } finally {
            res.delete();
        }
    }

    private static void run(Model model, Path outDir, ConvertOptions options, GptqOptions gptq, AwqOptions awq,
            ProgressListener listener) throws KtqException {
        model.readLock().lock();
        ktqs_result res = new ktqs_result();
        ktqs_token token = new ktqs_token();
        SWIGTYPE_p_ktq_calibration calibration = null;
        try {
            if (gptq != null) {
                calibration = ktqswig.ktqs_calibration_open(model.tokenizerPath(), gptq.dataset().toString(),
                        gptq.samples(), gptq.sequenceLength(), BigInteger.valueOf(gptq.seed()), res);
                check(res);
            } else if (awq != null) {
                calibration = ktqswig.ktqs_calibration_open(model.tokenizerPath(), awq.dataset().toString(),
                        awq.samples(), awq.sequenceLength(), BigInteger.valueOf(awq.seed()), res);
                check(res);
            }
            SWIGTYPE_p_ktq_writer writer = ktqswig.ktqs_writer_open(model.handle(), outDir.toString(),
                    options.format().code, BigInteger.valueOf(options.maxShardBytes()), options.overwrite() ? 1 : 0,
                    options.resume() ? 1 : 0, options.numaParts(), options.looseFiles() ? 1 : 0,
                    options.scheme().bits(), options.scheme().groupSize(), options.scheme().asymmetric() ? 1 : 0,
                    String.join("\n", options.targets()),
                    options.ignore() == null ? "" : String.join("\n", options.ignore()),
                    options.ignore() == null ? 1 : 0, options.scheme().dtypeRounding() ? 1 : 0,
                    options.scheme().mseObserver() ? 1 : 0, options.ggmlType().code,
                    options.splitExperts() ? 1 : 0, options.ggufMix() == null ? "" : options.ggufMix(),
                    orEmpty(options.gguf().tokenizerPre()), orEmpty(options.gguf().imatrix()),
                    orEmpty(options.gguf().routingStats()), options.gguf().sourceSha256() ? 1 : 0, res);
            check(res);
            try {
                if (listener != null && !listener.onProgress(new Progress(0, 0, 0))) ktqswig.ktqs_token_cancel(token);
                Thread caller = Thread.currentThread();
                Thread watcher = new Thread(() -> watch(token, caller, listener, options.progressIntervalMillis()),
                        "ktq-progress");
                watcher.setDaemon(true);
                watcher.start();
                try {
                    if (gptq != null)
                        ktqswig.ktqs_write_gptq(model.handle(), writer, options.threads(), options.device().code,
                                calibration, gptq.dampeningFrac(), gptq.actOrderNone() ? 1 : 0,
                                gptq.moeHessianAll() ? 1 : 0, BigInteger.valueOf(gptq.maxCpuMemory()), token,
                                res);
                    else if (awq != null)
                        ktqswig.ktqs_write_awq(model.handle(), writer, options.threads(), options.device().code,
                                calibration, awq.grid(),
                                awq.activationsOnly() ? 1 : 0, awq.clip() ? 1 : 0, awq.moeHessianAll() ? 1 : 0,
                                BigInteger.valueOf(awq.maxCpuMemory()), token, res);
                    else
                        ktqswig.ktqs_write(model.handle(), writer, options.threads(), options.device().code, token, res);
                } finally {
                    watcher.interrupt();
                    joinQuietly(watcher);
                }
                check(res);
            } finally {
                ktqswig.ktqs_writer_free(writer);
            }
        } finally {
            if (calibration != null) ktqswig.ktqs_calibration_free(calibration);
            token.delete();
            res.delete();
            model.readLock().unlock();
        }
    }

    private static void watch(ktqs_token token, Thread caller, ProgressListener listener, long intervalMillis) {
        while (!Thread.currentThread().isInterrupted()) {
            try {
                Thread.sleep(Math.max(1, intervalMillis));
            } catch (InterruptedException e) {
                return;
            }
            boolean keep = !caller.isInterrupted();
            if (keep && listener != null) {
                keep = listener.onProgress(new Progress(ktqswig.ktqs_token_layer(token),
                        ktqswig.ktqs_token_bytes_done(token).longValue(), ktqswig.ktqs_token_bytes_total(token).longValue()));
            }
            if (!keep) {
                ktqswig.ktqs_token_cancel(token);
                return;
            }
        }
    }

    private static String orEmpty(Object o) {
        return o == null ? "" : o.toString();
    }

    private static void joinQuietly(Thread t) {
        boolean interrupted = false;
        while (true) {
            try {
                t.join();
                break;
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) Thread.currentThread().interrupt();
    }
}
