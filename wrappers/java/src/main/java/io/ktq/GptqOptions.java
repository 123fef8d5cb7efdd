package io.ktq;

import java.nio.file.Path;

/**
 * GPTQ calibration for {@link Ktq#convertGptq}: {@code samples} (0 = 512) of {@code sequenceLength} tokens
 * (0 = 2048) drawn with {@code seed} from {@code dataset} (a local plain-text or JSONL file, tokenized with the
 * model's tokenizer.json); {@code dampeningFrac} of the mean Hessian diagonal (negative = the default 0.01);
 * {@code actOrderNone} quantizes columns in natural order instead of static activation order;
 * {@code moeHessianAll} weighs every token alike for routed experts (llm-compressor's moe_calibrate_all_experts)
 * instead of the default blend of routed and all tokens; {@code maxCpuMemory} is the host memory calibration may
 * hold, in bytes (0 = no limit; the CLI's {@code --max-cpu-memory}): over half of it the activations move to a
 * temporary file, and a layer that needs more on its own fails with {@link KtqException#NO_MEMORY} before anything
 * of it is written. The engine runs on the {@link ConvertOptions}' device.
 */
public record GptqOptions(Path dataset, int samples, int sequenceLength, long seed, double dampeningFrac,
        boolean actOrderNone, boolean moeHessianAll, long maxCpuMemory) {
    public GptqOptions {
        if (maxCpuMemory < 0) throw new IllegalArgumentException("maxCpuMemory " + maxCpuMemory + " < 0 (0 = no limit)");
    }

    public static GptqOptions of(Path dataset) {
        return new GptqOptions(dataset, 0, 0, 42, -1, false, false, 0);
    }

    public GptqOptions withSamples(int n, int sequenceLength) {
        return new GptqOptions(dataset, n, sequenceLength, seed, dampeningFrac, actOrderNone, moeHessianAll,
                maxCpuMemory);
    }

    public GptqOptions withMaxCpuMemory(long bytes) {
        return new GptqOptions(dataset, samples, sequenceLength, seed, dampeningFrac, actOrderNone, moeHessianAll,
                bytes);
    }
}
