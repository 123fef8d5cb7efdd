package io.ktq;

import java.util.Arrays;
import java.util.Objects;

/**
 * One tensor stored in a checkpoint: its name, the file inside the model folder that holds it, its stored dtype
 * ("BF16", "F8_E4M3", ...), its shape, its stored payload size in bytes, and the decoder layer it belongs to (-1
 * for tensors outside the layers). {@link #shape()} returns a copy.
 */
public record TensorInfo(String name, String file, String dtype, long[] shape, long nbytes, int layer) {
    public TensorInfo {
        Objects.requireNonNull(name, "name");
        shape = shape.clone();
    }

    /** The dimensions, outermost first (a copy). */
    @Override
    public long[] shape() {
        return shape.clone();
    }

    /** The number of elements (the product of the dimensions). */
    public long numel() {
        long n = 1;
        for (long d : shape) n *= d;
        return n;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof TensorInfo t && name.equals(t.name) && Objects.equals(file, t.file)
                && Objects.equals(dtype, t.dtype) && Arrays.equals(shape, t.shape) && nbytes == t.nbytes
                && layer == t.layer;
    }

    @Override
    public int hashCode() {
        return Objects.hash(name, file, dtype, Arrays.hashCode(shape), nbytes, layer);
    }

    @Override
    public String toString() {
        return "TensorInfo[name=" + name + ", file=" + file + ", dtype=" + dtype + ", shape=" + Arrays.toString(shape)
                + ", nbytes=" + nbytes + ", layer=" + layer + "]";
    }
}
