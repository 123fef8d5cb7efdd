package io.ktq;

/**
 * What {@link KtOutput#read} returns: the packed weight bytes of a part ({@link KtPart#packedBytes()} of them)
 * and its float32 scales, one per row. The arrays belong to the caller and are not copied.
 */
public record KtPartData(byte[] packed, float[] scales) {}
