package io.ktq;

import java.nio.file.Path;

/**
 * AWQ calibration for {@link Ktq#convertAwq}: {@code samples} (0 = 512) of {@code sequenceLength} tokens
 * (0 = 2048) drawn with {@code seed} from {@code dataset} (a local plain-text or JSONL file, tokenized with the
 * model's tokenizer.json); {@code grid} scale exponents per mapping (0 = 20); {@code activationsOnly} scales from
 * activation magnitudes alone (AutoAWQ) instead of llm-compressor's duo scaling; {@code clip} adds AutoAWQ's
 * clipping search (compressed-tensors only); {@code moeHessianAll} searches routed experts' up -> down on every
 * token alike instead of the default blend of routed and all tokens. The scheme and device are the
 * {@link ConvertOptions}' ({@code Scheme.W4A16} is symmetric; AWQ's usual scheme, the CLI's default for
 * {@code --engine awq}, is {@code new Scheme(4, 128, true)}). {@code maxCpuMemory} as {@link GptqOptions}'.
 */
public record AwqOptions(Path dataset, int samples, int sequenceLength, long seed, int grid, boolean activationsOnly,
        boolean clip, boolean moeHessianAll, long maxCpuMemory) {
    public AwqOptions {
        if (maxCpuMemory < 0) throw new IllegalArgumentException("maxCpuMemory " + maxCpuMemory + " < 0 (0 = no limit)");
    }

    public static AwqOptions of(Path dataset) {
        return new AwqOptions(dataset, 0, 0, 42, 0, false, false, false, 0);
    }

    public AwqOptions withSamples(int n, int sequenceLength) {
        return new AwqOptions(dataset, n, sequenceLength, seed, grid, activationsOnly, clip, moeHessianAll,
                maxCpuMemory);
    }

    public AwqOptions withMoeHessianAll(boolean all) {
        return new AwqOptions(dataset, samples, sequenceLength, seed, grid, activationsOnly, clip, all, maxCpuMemory);
    }

    public AwqOptions withMaxCpuMemory(long bytes) {
        return new AwqOptions(dataset, samples, sequenceLength, seed, grid, activationsOnly, clip, moeHessianAll,
                bytes);
    }
}
