package io.ktq;

import java.nio.file.Path;

/**
 * GPTQ calibration for {@link Ktq#convertGptq}: {@code samples} (0 = 512) of {@code sequenceLength} tokens
 * (0 = 2048) drawn with {@code seed} from {@code dataset} (a local plain-text or JSONL file, tokenized with the
 * model's tokenizer.json); {@code dampeningFrac} of the mean Hessian diagonal (negative = the default 0.01);
 * {@code actOrderNone} quantizes columns in natural order instead of static activation order;
 * {@code moeHessianAll} weighs every token alike for routed experts (llm-compressor's moe_calibrate_all_experts)
 * instead of the default blend of routed and all tokens.
 */
public record GptqOptions(Path dataset, int samples, int sequenceLength, long seed, double dampeningFrac,
        boolean actOrderNone, boolean moeHessianAll) {
    public static GptqOptions of(Path dataset) {
        return new GptqOptions(dataset, 0, 0, 42, -1, false, false);
    }

    public GptqOptions withSamples(int n, int sequenceLength) {
        return new GptqOptions(dataset, n, sequenceLength, seed, dampeningFrac, actOrderNone, moeHessianAll);
    }
}
