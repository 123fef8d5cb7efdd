package io.ktq;

/**
 * What {@link Gptq#quantize} returns for a weight [rows, cols], in compressed-tensors' "pack-quantized" layout:
 * {@code packed} int32 [rows, ceil(cols * bits / 32)] (weight_packed: codes + 2^(bits-1), LSB first),
 * {@code scales} [rows, cols / groupSize] (weight_scale; BF16 values when the options said bf16),
 * {@code zeroPoints} int32 [ceil(rows * bits / 32), groups] (weight_zero_point; empty for symmetric schemes),
 * {@code dequantized} [rows, cols] (the weights the codes stand for), the GPTQ {@code loss}, and
 * {@code rtnFallback}: the damped Hessian was not positive definite, so the weights were rounded to nearest
 * instead. The arrays belong to the caller and are not copied.
 */
public record GptqResult(int[] packed, float[] scales, int[] zeroPoints, float[] dequantized, double loss,
                         boolean rtnFallback) {}
