package io.ktq;

/**
 * Options of {@link Gptq#quantize}: the compressed-tensors scheme ({@code bits} 2..8, {@code groupSize} weights
 * per scale along a row or -1 for one per row, {@code symmetric} or with zero points), whether the weights are
 * BF16 values whose scales are rounded to BF16 as a BF16 model's are ({@code bf16}), the dampening as a fraction
 * of the mean Hessian diagonal (negative = the default 0.01, llm-compressor's), {@code naturalOrder} to quantize
 * the columns in natural order instead of static activation order, and where to solve ({@code device}; CUDA
 * device {@code cudaDevice}). Start from {@link #defaults()}: 4 bits, groups of 128, symmetric, float32, default
 * dampening, activation order, CPU.
 */
public record GptqQuantizeOptions(int bits, int groupSize, boolean symmetric, boolean bf16, double dampeningFrac,
                                  boolean naturalOrder, ConvertOptions.Device device, int cudaDevice) {
    public GptqQuantizeOptions {
        if (device == null) throw new IllegalArgumentException("device is null");
    }

    /** W4A16 with groups of 128, symmetric, float32 weights, llm-compressor's dampening and act order, CPU. */
    public static GptqQuantizeOptions defaults() {
        return new GptqQuantizeOptions(4, 128, true, false, -1, false, ConvertOptions.Device.CPU, 0);
    }

    public GptqQuantizeOptions withBits(int b) {
        return new GptqQuantizeOptions(b, groupSize, symmetric, bf16, dampeningFrac, naturalOrder, device, cudaDevice);
    }

    /** Weights per scale along a row; -1 = one scale per output channel. */
    public GptqQuantizeOptions withGroupSize(int g) {
        return new GptqQuantizeOptions(bits, g, symmetric, bf16, dampeningFrac, naturalOrder, device, cudaDevice);
    }

    /** False: asymmetric, with zero points. */
    public GptqQuantizeOptions withSymmetric(boolean s) {
        return new GptqQuantizeOptions(bits, groupSize, s, bf16, dampeningFrac, naturalOrder, device, cudaDevice);
    }

    /**
     * True: the weights are BF16 values (each float's low 16 bits zero, as {@link Model#readTensor} gives for a
     * BF16 tensor) and the scales are rounded to BF16.
     */
    public GptqQuantizeOptions withBf16(boolean b) {
        return new GptqQuantizeOptions(bits, groupSize, symmetric, b, dampeningFrac, naturalOrder, device, cudaDevice);
    }

    /** Fraction of the mean Hessian diagonal added to it; negative = the default 0.01. */
    public GptqQuantizeOptions withDampeningFrac(double d) {
        return new GptqQuantizeOptions(bits, groupSize, symmetric, bf16, d, naturalOrder, device, cudaDevice);
    }

    /** True: columns in natural order instead of static activation order (llm-compressor's default). */
    public GptqQuantizeOptions withNaturalOrder(boolean n) {
        return new GptqQuantizeOptions(bits, groupSize, symmetric, bf16, dampeningFrac, n, device, cudaDevice);
    }

    /** Where to solve; {@code cudaDevice} selects the CUDA device (a libktq built with CUDA). */
    public GptqQuantizeOptions withDevice(ConvertOptions.Device d, int cuda) {
        return new GptqQuantizeOptions(bits, groupSize, symmetric, bf16, dampeningFrac, naturalOrder, d, cuda);
    }
}
